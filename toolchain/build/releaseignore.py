"""Which files of a plugin directory go into a release (`.releaseignore`, gitignore syntax)."""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.core.errors import ReleaseError
from toolchain.core.layout import RELEASE_DIR, RELEASEIGNORE, VENV

# Never packed, whatever `.releaseignore` says.
ALWAYS_EXCLUDED_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "__pycache__"})
ALWAYS_EXCLUDED_TOP = frozenset({VENV, ".wheelhouse", ".wheelhouse-targets", RELEASE_DIR})
ARTIFACT_SUFFIX = ".plugin"


def load_spec(root: Path):  # type: ignore[no-untyped-def]
    """The pathspec of the plugin's `.releaseignore` (empty when there is none)."""
    import pathspec

    path = root / RELEASEIGNORE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception as exc:  # pathspec raises several kinds for a bad pattern
        raise ReleaseError(f"{path}: invalid pattern: {exc}") from None


def _has_negation(spec) -> bool:  # type: ignore[no-untyped-def]
    return any(getattr(p, "include", None) is False for p in spec.patterns)


def select(root: Path) -> list[str]:
    """Relative POSIX paths (files, symlinks, non-ignored dirs) to release, sorted."""
    spec = load_spec(root)
    ignored = spec.match_file
    # Without negations an ignored directory cannot hold a kept file: skip its whole tree.
    prune = not _has_negation(spec)
    kept: list[str] = []
    # Depth first with os.scandir: the kind of each entry comes with the listing, no stat.
    pending: list[tuple[str, str]] = [(os.fspath(root), "")]
    while pending:
        current, rel_dir = pending.pop()
        with os.scandir(current) as listing:
            for entry in listing:
                name = entry.name
                rel = rel_dir + name
                if entry.is_dir(follow_symlinks=False):
                    if name in ALWAYS_EXCLUDED_DIRS or (
                        not rel_dir and name in ALWAYS_EXCLUDED_TOP
                    ):
                        continue
                    if ignored(rel + "/"):
                        if prune:
                            continue
                    else:
                        kept.append(rel)
                    pending.append((entry.path, rel + "/"))
                elif entry.is_symlink() and entry.is_dir():  # listed with the directories
                    excluded = name in ALWAYS_EXCLUDED_DIRS or (
                        not rel_dir and name in ALWAYS_EXCLUDED_TOP
                    )
                    if not excluded and not ignored(rel):
                        kept.append(rel)
                elif not name.endswith(ARTIFACT_SUFFIX) and not ignored(rel):
                    kept.append(rel)
    # A directory ignored itself but holding re-included files is still needed.
    present = set(kept)
    for rel in list(kept):
        parent = rel.rpartition("/")[0]
        while parent and parent not in present:
            present.add(parent)
            kept.append(parent)
            parent = parent.rpartition("/")[0]
    kept.sort()
    return kept
