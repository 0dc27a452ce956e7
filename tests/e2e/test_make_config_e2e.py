"""`make release` and the toolchain read config.ini the same way, and a broken one is one
error line naming the file and what is wrong, from make as from `plugin-build`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.plugin_dirs import tool_env
from toolchain.artifact import spec
from toolchain.core.layout import makefile_plugin

pytestmark = pytest.mark.slow

GOOD = "[general]\nname = hello\n_version = 0.1.0\n_release = 2\n\n[custom]\nx = 1\n"


def plugin_dir(root: Path, config: bytes) -> Path:
    root.mkdir()
    (root / "Makefile").write_text(f"include {makefile_plugin()}\n")
    (root / "config.ini").write_bytes(config)
    (root / "python3_virtualenv_sources").mkdir()
    (root / "python3_virtualenv_sources" / "requirements-to-freeze.txt").write_text("")
    return root


def run(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=root, capture_output=True, text=True, env=tool_env(), errors="replace",
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(
    "config",
    [
        GOOD,
        GOOD.replace("_version = 0.1.0", "_version: 0.3.0"),
        GOOD.replace("_version = 0.1.0", "_version=0.3.0"),
        GOOD.replace("_release = 2\n", ""),
        GOOD.replace("_version = 0.1.0", "_version = 0.1.0\n_version[DEV] = 9"),
        GOOD.replace("name = hello", "  name = hello"),
        GOOD.replace("name = hello", "name = hello  ; comment? no: part of the value"),
        "[custom]\nname = other\n" + GOOD,
    ],
)
def test_make_names_the_artifact_as_the_toolchain_does(tmp_path: Path, config: str) -> None:
    root = plugin_dir(tmp_path / "p", config.encode())
    asked = run(root, "plugin-build", "artifact-name")
    dry = run(root, "make", "-n", "release")
    if asked.returncode != 0:  # the toolchain refuses it: so does make, with its words
        assert dry.returncode != 0
        assert asked.stderr.strip().removeprefix("ERROR: ") in dry.stderr
        return
    name = asked.stdout.strip()
    assert name.endswith(f".{spec.platform_tag()}.plugin")
    assert f"--output '{name}'" in dry.stdout, dry.stdout + dry.stderr


@pytest.mark.parametrize(
    ("label", "config", "expected"),
    [
        ("empty", b"", "missing section [general]"),
        ("no general", GOOD.replace("[general]", "[misc]").encode(), "missing section [general]"),
        ("capital", GOOD.replace("[general]", "[General]").encode(), "there is [General]"),
        ("bom", b"\xef\xbb\xbf" + GOOD.encode(), "byte order mark"),
        ("dash", GOOD.replace("= hello", "= -h").encode(), "must not start with '-'"),
        ("nul", GOOD.replace("= hello", "= he\0llo").encode(), "NUL byte"),
        ("huge", GOOD.replace("0.1.0", "1" * 1_000_000).encode(), "too long for a version"),
        ("templated", GOOD.replace("0.1.0", "{{ -1 }}").encode(), "cannot be a Jinja2"),
        ("shell", GOOD.replace("= hello", "= x$(touch pwned)").encode(), "invalid plugin name"),
        ("syntax", GOOD.replace("x = 1", "not a key").encode(), "line 7: 'not a key\\n'"),
    ],
)
def test_a_broken_config_is_one_error_line_and_no_artifact(
    tmp_path: Path, label: str, config: bytes, expected: str
) -> None:
    root = plugin_dir(tmp_path / "p", config)
    for argv in (["make", "release"], ["plugin-build", "release"]):
        proc = run(root, *argv)
        out = proc.stdout + proc.stderr
        errors = [line for line in out.splitlines() if re.search(r"error|traceback", line, re.I)]
        assert proc.returncode != 0, out
        assert len(errors) == 1, out
        assert f"{root / 'config.ini'}: " in errors[0] and expected in errors[0], errors[0][:500]
        assert len(errors[0]) < 500
    assert not list(root.glob("*.plugin")) and not (root / "pwned").exists()
