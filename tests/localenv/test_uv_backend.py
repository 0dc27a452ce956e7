"""PLUGIN_BACKEND=uv: the same pins and the same installed files as pip/pip-tools/virtualenv."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements
from toolchain.build import freeze
from toolchain.core.errors import ToolchainError
from toolchain.core.layout import PluginDir
from toolchain.localenv import backend, venv

# uv's own bookkeeping, and files whose text names the installer or the launcher template.
UV_ONLY = {".lock", "uv_cache.json"}
INSTALLER_TEXT = {"INSTALLER", "RECORD"}


def _installed(dest: Path, empty: Path) -> dict[str, bytes]:
    """What installing the pins added to an empty virtualenv of the same backend."""
    before = {p.relative_to(empty).as_posix() for p in empty.rglob("*") if not p.is_dir()}
    found = {}
    for path in dest.rglob("*"):
        rel = path.relative_to(dest).as_posix()
        if path.is_dir() or rel in before or path.name in UV_ONLY:
            continue
        found[rel] = path.read_bytes()
    return found


def _freeze_and_build(parent: Path, wheels: Path) -> tuple[list[freeze.Pin], dict[str, bytes]]:
    plugin = PluginDir(render_default(parent))
    set_requirements(plugin.root, wheels, "beta", "gamma")
    freeze.freeze(plugin)
    venv.build(parent / "empty", None)
    venv.build(parent / "env", plugin.req_out, offline=True)
    out = subprocess.run([parent / "env" / "bin" / "alpha"], capture_output=True, text=True)
    assert out.stdout == "alpha 2.0\n"
    return freeze.read_pins(plugin.req_out), _installed(parent / "env", parent / "empty")


def test_uv_gives_the_same_pins_and_installed_files(
    tmp_path: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert backend.uv_executable(), "uv is a test dependency (the `test` extra)"
    pip_pins, pip_files = _freeze_and_build(tmp_path / "pip", wheels)
    monkeypatch.setenv("PLUGIN_BACKEND", "uv")
    uv_pins, uv_files = _freeze_and_build(tmp_path / "uv", wheels)

    assert uv_pins == pip_pins
    assert [p.name for p in pip_pins] == ["alpha", "beta", "gamma"]
    assert sorted(uv_files) == sorted(pip_files)
    assert any(rel.endswith(".pyc") for rel in pip_files)  # bytecode compiled by both
    for rel, data in pip_files.items():
        if rel.endswith(".pyc") or rel.startswith("bin/") or rel.rsplit("/")[-1] in INSTALLER_TEXT:
            continue  # timestamps, launcher templates, installer names
        assert uv_files[rel] == data, rel
    assert not (tmp_path / "uv" / "env" / "bin" / "pip").exists()  # uv's envs hold no pip


def test_unknown_or_missing_backend_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLUGIN_BACKEND", "conda")
    with pytest.raises(ToolchainError, match="PLUGIN_BACKEND='conda'"):
        backend.current()
    monkeypatch.setenv("PLUGIN_BACKEND", "uv")
    monkeypatch.setattr(backend, "uv_executable", lambda: None)
    with pytest.raises(ToolchainError, match="uv is not installed"):
        backend.current()
    monkeypatch.setenv("PLUGIN_BACKEND", "pip")
    assert backend.current().name == "pip"
