"""Freezing a plugin that requires others: their pins constrain pip-tools, conflicts by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements
from tests.support.plugin_factory import build_plugin, write_tree
from toolchain.build import constraints, freeze, release
from toolchain.cli.build import main as build_main
from toolchain.cli.plugins import install_main
from toolchain.core.errors import FreezeError
from toolchain.core.layout import REQ_OUT, PluginDir, Runtime

FAKE_HASH = "sha256:" + "0" * 64


def requiring(tmp_path: Path, wheels: Path, requires: str) -> PluginDir:
    """The default template as plugin `app`, requiring `requires`, needing `beta`."""
    root = render_default(tmp_path, "app")
    cfg = root / "config.ini"
    cfg.write_text(re.sub(r"(?m)^_requires =.*$", f"_requires = {requires}", cfg.read_text()))
    set_requirements(root, wheels, "beta")
    return PluginDir(root)


def devlinked(tmp_path: Path, name: str, pins: dict[str, str], *requires: str) -> Path:
    """A devlinked plugin whose requirements3.txt pins `pins`."""
    root = write_tree(tmp_path / "src" / name, name, "1.0")
    if requires:
        cfg = root / "config.ini"
        cfg.write_text(
            cfg.read_text().replace("[custom]", f"_requires = {', '.join(requires)}\n[custom]")
        )
    (root / REQ_OUT).parent.mkdir(parents=True, exist_ok=True)
    (root / REQ_OUT).write_text(_pins_file(pins))
    assert install_main(["--devlink", str(root), "--force"]) == 0
    return root


def _pins_file(pins: dict[str, str]) -> str:
    lines = [f"{n}=={v} \\\n    --hash={FAKE_HASH}\n" for n, v in pins.items()]
    return "# frozen\n--no-index\n" + "".join(lines)


def test_pins_of_a_required_plugin_come_from_a_repository_when_it_is_not_installed(
    tmp_path: Path,
    wheels: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = requiring(tmp_path, wheels, "core>=1")
    assert build_main(["-C", str(app.root), "freeze"]) == 0  # a CI job can always release
    assert "frozen without the pins of core: not installed, and no PLUGIN_REPOSITORY is set" in (
        caplog.text
    )
    assert {p.name: p.version for p in freeze.read_pins(app.req_out)}["alpha"] == "2.0"

    repo = tmp_path / "repository"
    repo.mkdir()
    # the newest that satisfies core>=1 is 1.5
    build_plugin(repo, "core", "0.9", files={REQ_OUT: _pins_file({"alpha": "2.0"})})
    build_plugin(repo, "core", "1.5", files={REQ_OUT: _pins_file({"alpha": "1.0"})})
    build_plugin(repo, "core", "1.2", files={REQ_OUT: _pins_file({"alpha": "2.0"})})
    (repo / "core-9.0-1.linux_x86_64.plugin").write_bytes(b"not an archive")
    build_plugin(repo, "core", "9.1", meta={"requires": "core"})  # not a list
    caplog.clear()
    assert build_main(["-C", str(app.root), "freeze", "--repository", str(repo)]) == 0
    assert {p.name: p.version for p in freeze.read_pins(app.req_out)}["alpha"] == "1.0"
    assert "frozen without" not in caplog.text
    assert "core-9.0-1.linux_x86_64.plugin: skipped: " in caplog.text
    assert "core-9.1-1." in caplog.text and "'requires' is not a list of strings" in caplog.text
    # the same through PLUGIN_REPOSITORY, recorded in the release's metadata
    monkeypatch.setenv("PLUGIN_REPOSITORY", str(repo))
    recorded = release.plugin_pins(app, None)
    assert recorded["pins"] == {"alpha": "1.0", "beta": "1.0"}
    assert recorded["inherited_pins"] == {
        "core": {"version": "1.5", "source": "repository", "pins": {"alpha": "1.0"}}
    }
    monkeypatch.setenv("PLUGIN_REPOSITORY", str(tmp_path / "nowhere"))
    assert build_main(["-C", str(app.root), "freeze", "--force"]) == 1
    assert "PLUGIN_REPOSITORY is not a directory" in capsys.readouterr().err


def test_required_plugin_pins_constrain_and_conflicts_are_named(
    tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = requiring(tmp_path, wheels, "core>=1")

    # core pins alpha 1.0 through extra, which it requires; beta needs alpha>=1.0: fine
    devlinked(tmp_path, "extra", {"alpha": "1.0", "gamma": "1.0"})
    devlinked(tmp_path, "core", {}, "extra")
    capsys.readouterr()
    assert build_main(["-C", str(app.root), "freeze"]) == 0
    text = app.req_out.read_text()
    pins = {p.name: p.version for p in freeze.read_pins(app.req_out)}
    assert pins == {"alpha": "1.0", "beta": "1.0"}  # 2.0 without the constraint
    assert "-c plugin-extra.txt" in text and str(tmp_path) not in text.replace(str(wheels), "")
    assert not list(app.req_in.parent.glob(".constraints-*"))
    capsys.readouterr()
    assert build_main(["-C", str(app.root), "freeze"]) == 0
    assert capsys.readouterr().out.startswith("unchanged: ")

    # a pin that the plugin's own requirements cannot take is named with its plugin
    set_requirements(app.root, wheels, "beta", "alpha>=2")
    assert build_main(["-C", str(app.root), "freeze"]) == 1
    err = capsys.readouterr().err
    assert "conflicts with required plugins: plugin extra pins alpha==1.0 but app" in err
    assert "resolves to 2.0" in err
    assert err.count("\n") == 1


def test_required_plugins_that_disagree_are_named(tmp_path: Path, wheels: Path) -> None:
    assert constraints.cross_conflicts(
        {"one": {"alpha": "1.0", "gamma": "1.0"}, "two": {"alpha": "2.0", "gamma": "1.0"}}
    ) == ["plugin one pins alpha==1.0, plugin two pins alpha==2.0"]
    app = requiring(tmp_path, wheels, "one, two")
    devlinked(tmp_path, "one", {"alpha": "1.0"})
    devlinked(tmp_path, "two", {"alpha": "2.0"})
    with pytest.raises(FreezeError, match=r"disagree: plugin one pins alpha==1\.0"):
        constraints.freeze_with_plugins(app, Runtime.current())
