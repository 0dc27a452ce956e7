"""The plugin's virtualenv in local/: built from the pins, rebuilt only when they change."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements
from toolchain.build import freeze
from toolchain.cli.build import main as build_main
from toolchain.core.layout import ALLOW_BINARY, VENV_STAMP, PluginDir


def _versions(plugin: PluginDir) -> str:
    python = plugin.venv / "bin" / "python"
    code = "import alpha; print(alpha.__version__)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def test_venv_built_then_reused_then_rebuilt_on_change(
    tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = PluginDir(render_default(tmp_path))
    set_requirements(plugin.root, wheels, "alpha==1.0")
    freeze.freeze(plugin)
    assert build_main(["-C", str(plugin.root), "venv"]) == 0
    assert "built:" in capsys.readouterr().out
    assert _versions(plugin) == "1.0"
    assert (plugin.venv / "bin" / "alpha").exists()  # console script of the pinned wheel
    marker = plugin.venv / "marker"
    marker.write_text("same venv")

    assert build_main(["-C", str(plugin.root), "venv"]) == 0
    assert "unchanged:" in capsys.readouterr().out
    assert marker.exists()

    set_requirements(plugin.root, wheels, "alpha==2.0")
    freeze.freeze(plugin)
    assert build_main(["-C", str(plugin.root), "venv"]) == 0
    assert "built:" in capsys.readouterr().out
    assert not marker.exists()
    assert _versions(plugin) == "2.0"


def test_failed_build_leaves_no_local(
    tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = PluginDir(render_default(tmp_path))
    set_requirements(plugin.root, wheels, "alpha==1.0")
    freeze.freeze(plugin)
    # A pin whose hash matches nothing: pip refuses to install it.
    text = plugin.req_out.read_text()
    plugin.req_out.write_text(
        "\n".join(
            line if "--hash" not in line else "    --hash=sha256:" + "0" * 64
            for line in text.splitlines()
        )
        + "\n"
    )
    assert build_main(["-C", str(plugin.root), "venv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: pip install -r") and err.count("\n") == 1
    assert not plugin.venv.exists()
    assert not (plugin.root / VENV_STAMP).exists()


def test_deleting_allow_binary_packages_builds_from_source(
    tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = PluginDir(render_default(tmp_path))
    set_requirements(plugin.root, wheels, "gamma")
    freeze.freeze(plugin)
    assert build_main(["-C", str(plugin.root), "venv"]) == 0
    (plugin.root / ALLOW_BINARY).unlink()
    # The test wheels have no sdist: a from-source build must refuse them, which shows that
    # the policy changed and that the venv is rebuilt rather than reused.
    assert build_main(["-C", str(plugin.root), "venv"]) == 1
    err = capsys.readouterr().err
    assert "gamma" in err
    assert not plugin.venv.exists()
