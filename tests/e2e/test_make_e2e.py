"""End to end through real make: the default template, a requirement, make, make release."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements, tool_env
from toolchain.artifact import spec

pytestmark = pytest.mark.slow


def make(root: Path, *targets: str) -> str:
    proc = subprocess.run(
        ["make", "-C", str(root), *targets],
        capture_output=True, text=True, env=tool_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_make_release_of_the_default_template(tmp_path: Path, wheels: Path) -> None:
    root = render_default(tmp_path)
    set_requirements(root, wheels, "beta")
    out = make(root)
    assert "plugin-build freeze" in out and "plugin-build venv" in out
    assert (root / "local" / "bin" / "alpha").exists()
    assert "Nothing to be done" in make(root)

    # Same content, newer mtime: the freeze step runs but does not re-resolve.
    (root / "python3_virtualenv_sources" / "requirements-to-freeze.txt").touch()
    out = make(root)
    assert "unchanged:" in out
    assert "Nothing to be done" in make(root)

    out = make(root, "release")
    plugin_file = root / f"hello-0.1.0-1.{spec.platform_tag()}.plugin"
    assert f"released: {plugin_file}" in out
    with tarfile.open(plugin_file) as tar:
        names = tar.getnames()
    assert "hello/.release/wheelhouse/alpha-2.0-py3-none-any.whl" in names
    assert "hello/.release/wheelhouse/beta-1.0-py3-none-any.whl" in names
    assert "hello/bin/hello" in names
    assert not [n for n in names if n.startswith("hello/local")]
    first = plugin_file.read_bytes()
    assert "Nothing to be done for 'release'" in make(root, "release")

    # A changed file makes a new artifact; a deleted one too.
    (root / "bin" / "extra").write_text("#!/bin/sh\n")
    assert "released:" in make(root, "release")
    assert plugin_file.read_bytes() != first
    (root / "bin" / "extra").unlink()
    assert "released:" in make(root, "release")

    # custom:: hooks run after the default target.
    (root / "Makefile").write_text(
        "include $(shell toolchain-makefile-path)\ncustom::\n\t@echo custom-hook-ran\n"
    )
    assert "custom-hook-ran" in make(root)

    # make develop: the runtime links to the source directory, and the command runs in it.
    assert "devlinked hello" in make(root, "develop")
    listed = subprocess.run(
        ["plugins.list", "--json"], capture_output=True, text=True, env=tool_env(), check=True
    ).stdout
    assert '"dev_link": "' + str(root) in listed
    ran = subprocess.run(
        ["plugin_wrapper", "hello", "--", "hello"],
        capture_output=True, text=True, env=tool_env(), check=True,
    )  # fmt: skip
    assert ran.stdout.startswith("Hello from hello (plugin hello")

    assert "superclean" in make(root, "help")
    make(root, "clean")
    assert not (root / "local").exists() and not plugin_file.exists()
    assert (root / "python3_virtualenv_sources" / "requirements3.txt").exists()
    make(root, "superclean")
    assert not (root / "python3_virtualenv_sources" / "requirements3.txt").exists()
    assert (root / "config.ini").exists() and (root / "bin" / "hello").exists()
