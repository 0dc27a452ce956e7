"""Freezing with pip-tools: pins with hashes, re-resolved only when the input's content changes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements
from tests.support.wheels import make_wheel
from toolchain.build import freeze
from toolchain.cli.build import main as build_main
from toolchain.core.errors import FreezeError
from toolchain.core.layout import PluginDir


@pytest.fixture
def plugin(tmp_path: Path, wheels: Path) -> PluginDir:
    root = render_default(tmp_path)
    set_requirements(root, wheels, "beta")
    return PluginDir(root)


def test_freeze_pins_with_hashes_and_carries_options(plugin: PluginDir, wheels: Path) -> None:
    assert freeze.freeze(plugin) is True
    text = plugin.req_out.read_text()
    assert "--no-index\n" in text
    assert f"--find-links {wheels}\n" in text
    pins = {p.name: p for p in freeze.read_pins(plugin.req_out)}
    assert {n: p.version for n, p in pins.items()} == {"alpha": "2.0", "beta": "1.0"}
    assert all(h.startswith("sha256:") for p in pins.values() for h in p.hashes)
    # pip's own configuration never leaks into the frozen file
    assert "pypi" not in text and "/opt/" not in text


def test_unchanged_input_is_not_resolved_again(tmp_path: Path, plugin: PluginDir) -> None:
    local = tmp_path / "own-wheels"
    make_wheel(local, "alpha", "1.0")
    set_requirements(plugin.root, local, "alpha")
    assert freeze.freeze(plugin) is True
    before = plugin.req_out.read_text()
    make_wheel(local, "alpha", "3.0")  # a re-resolve without the old pins would take it
    os.utime(plugin.req_in, (2e9, 2e9))  # newer mtime, same content
    assert freeze.freeze(plugin) is False
    assert plugin.req_out.read_text() == before
    assert "alpha==1.0" in plugin.req_out.read_text()


def test_changed_input_is_resolved_again(plugin: PluginDir, wheels: Path) -> None:
    freeze.freeze(plugin)
    set_requirements(plugin.root, wheels, "beta", "gamma")
    assert freeze.freeze(plugin) is True
    assert {p.name for p in freeze.read_pins(plugin.req_out)} == {"alpha", "beta", "gamma"}


def test_existing_pins_are_kept_and_force_re_resolves(plugin: PluginDir, wheels: Path) -> None:
    set_requirements(plugin.root, wheels, "alpha==1.0")
    freeze.freeze(plugin)
    set_requirements(plugin.root, wheels, "alpha")
    freeze.freeze(plugin)
    assert [p.version for p in freeze.read_pins(plugin.req_out)] == ["1.0"]  # pip-tools kept it
    freeze.freeze(plugin, force=True)
    assert [p.version for p in freeze.read_pins(plugin.req_out)] == ["2.0"]


def test_unresolvable_requirement_keeps_previous_pins(
    plugin: PluginDir, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    freeze.freeze(plugin)
    before = plugin.req_out.read_text()
    set_requirements(plugin.root, wheels, "nosuchpackage")
    assert build_main(["-C", str(plugin.root), "freeze"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ERROR: ") and "requirements-to-freeze.txt: cannot freeze" in err
    assert "nosuchpackage" in err and len(err.splitlines()) == 1
    assert plugin.req_out.read_text() == before
    assert not list(plugin.req_in.parent.glob(".*.tmp"))


def test_missing_input_is_explained(plugin: PluginDir) -> None:
    plugin.req_in.unlink()
    with pytest.raises(FreezeError, match=r"requirements-to-freeze\.txt: missing"):
        freeze.freeze(plugin)


def test_unpinned_or_unhashed_lines_are_refused(tmp_path: Path) -> None:
    req = tmp_path / "requirements3.txt"
    req.write_text("alpha>=1\n")
    with pytest.raises(FreezeError, match="alpha is not pinned"):
        freeze.read_pins(req)
    req.write_text("alpha==1\n")
    with pytest.raises(FreezeError, match="alpha has no --hash"):
        freeze.read_pins(req)


@pytest.mark.parametrize("backend", ["pip", "uv"])
@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("nosuchpackage", r"(no release of |require )nosuchpackage.*\(line 3\)"),
        ("gamma==9.9", r"no release of gamma==9\.9 matches \(line 3\)|no version of gamma==9\.9"),
    ],
)
def test_an_unresolvable_requirement_is_said_in_words_with_its_line(
    plugin: PluginDir,
    wheels: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    requirement: str,
    expected: str,
) -> None:
    monkeypatch.setenv("PLUGIN_BACKEND", backend)
    set_requirements(plugin.root, wheels, requirement)
    assert build_main(["-C", str(plugin.root), "freeze"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ERROR: ")
    assert re.search(expected, err), err
    for fragment in ('File "', "Traceback", "raise ", "pip._internal", "resolvelib"):
        assert fragment not in err, err
