""".releaseignore: gitignore semantics with negations; generated dirs never packed."""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.build.releaseignore import select


def _tree(root: Path, *paths: str) -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


def test_patterns_negations_and_directories(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        "config.ini",
        "notes.log",
        "keep.log",
        "docs/a.md",
        "docs/build/x.html",
        "data/raw/big.bin",
        "data/raw/small.txt",
        "src/mod.py",
        "src/__pycache__/mod.cpython-311.pyc",
        "local/bin/python",
        ".git/HEAD",
        "old-1.0-1.linux_x86_64.plugin",
        ".wheelhouse/alpha.whl",
    )
    (tmp_path / ".releaseignore").write_text(
        "# comment\n*.log\n!keep.log\ndocs/build/\n/data/raw/*\n!/data/raw/small.txt\n"
    )
    assert select(tmp_path) == [
        ".releaseignore",
        "config.ini",
        "data",
        "data/raw",
        "data/raw/small.txt",
        "docs",
        "docs/a.md",
        "keep.log",
        "src",
        "src/mod.py",
    ]


def test_ignored_directory_pruned_without_negations(tmp_path: Path) -> None:
    _tree(tmp_path, "a.txt", "tests/test_x.py", "tests/deep/y.py", "sub/tests/z.py")
    (tmp_path / ".releaseignore").write_text("/tests/\n")
    assert select(tmp_path) == [".releaseignore", "a.txt", "sub", "sub/tests", "sub/tests/z.py"]


def test_no_releaseignore_keeps_everything_but_generated(tmp_path: Path) -> None:
    _tree(tmp_path, "a.txt", "local/x", "b/__pycache__/c.pyc", "x.plugin")
    os.symlink("a.txt", tmp_path / "link")
    assert select(tmp_path) == ["a.txt", "b", "link"]
