"""plugins.install with dependencies and a repository, batches, and uninstalling a dependency."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugin_factory import build_plugin, config_ini
from toolchain.cli.plugins import install_main, list_main, uninstall_main
from toolchain.core.layout import Runtime


def plugin(directory: Path, name: str, version: str, *requires: str, **options: Any) -> Path:
    """A `.plugin` whose config.ini `_requires` and metadata `requires` list `requires`."""
    cfg = config_ini(name, version).replace(
        "[custom]", f"_requires = {', '.join(requires)}\n\n[custom]" if requires else "[custom]"
    )
    return build_plugin(
        directory, name, version, config=cfg, meta={"requires": list(requires)}, **options
    )


def versions(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    capsys.readouterr()
    assert list_main(["--json"]) == 0
    return {row["name"]: row["version"] for row in json.loads(capsys.readouterr().out)}


def snapshot(rt: Runtime) -> dict[str, Any]:
    """Everything an install may change: entries, their files, venvs, overrides, archive."""

    def tree(root: Path) -> list[tuple[str, float]]:
        if not root.exists():
            return []
        return sorted((str(p.relative_to(root)), p.lstat().st_mtime) for p in root.rglob("*"))

    return {
        "plugins": tree(rt.plugins),
        "venvs": sorted(p.name for p in rt.venvs.iterdir()),
        "overrides": {p.name: p.read_text() for p in rt.overrides.iterdir()},
        "archive": tree(rt.archive),
    }


def fails(capsys: pytest.CaptureFixture[str], argv: Sequence[str]) -> str:
    """Run plugins.install expecting exit 1 and one ERROR line; return it."""
    capsys.readouterr()
    assert install_main(list(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and err.count("\n") == 1
    return err


def test_chain_and_two_requirers_resolve_from_a_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    for version in ("1.0", "2.0", "2.5", "3.0"):
        plugin(repo, "core", version)
    plugin(repo, "mid", "1.0", "core>=1.0,<3")
    plugin(repo, "mid", "0.5", "core>=1.0")
    top = plugin(tmp_path, "top", "1.0", "mid", "core>=2")

    # without a repository the missing dependency is named, and nothing is installed
    err = fails(capsys, [str(top)])
    assert "mid is missing: required by top 1.0-1" in err
    assert "core is missing: required by top 1.0-1 (core>=2)" in err
    assert versions(capsys) == {}

    assert install_main(["--dry-run", "--repository", str(repo), str(top)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "would install core 2.5-1 (required by top 1.0-1 (core>=2), mid 1.0-1 (core<3,>=1.0))",
        "would install mid 1.0-1 (required by top 1.0-1)",
        "would install top 1.0-1",
    ]
    assert versions(capsys) == {}
    assert install_main(["--repository", str(repo), str(top)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "installed core 2.5-1",
        "installed mid 1.0-1",
        "installed top 1.0-1",
    ]
    assert versions(capsys) == {"core": "2.5", "mid": "1.0", "top": "1.0"}


@pytest.fixture
def upgraded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """core 1.0 installed, then app (core>=1.5) from a repository offering core 1.5 and 2.0."""
    repo = tmp_path / "repo"
    assert install_main([str(plugin(tmp_path, "core", "1.0"))]) == 0
    plugin(repo, "core", "1.5")
    plugin(repo, "core", "2.0")
    app = plugin(tmp_path, "app", "1.0", "core>=1.5")
    capsys.readouterr()
    assert install_main(["--repository", str(repo), str(app)]) == 0
    return repo, app


def test_a_too_old_dependency_is_upgraded_to_the_newest(
    upgraded: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert capsys.readouterr().out.splitlines() == [
        "replaced core 1.0-1 with 2.0-1",
        "installed app 1.0-1",
    ]
    assert versions(capsys) == {"app": "1.0", "core": "2.0"}


def test_every_dependency_problem_is_listed_and_nothing_changes(
    upgraded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _app = upgraded
    rt = Runtime.current()
    before = snapshot(rt)
    # a downgrade, a cycle, a missing plugin deep in a chain and an unsatisfiable
    # requirement: one error lists them all, and nothing changes
    plugin(repo, "loop", "1.0", "knot")
    plugin(repo, "knot", "1.0", "loop")
    plugin(repo, "deep1", "1.0", "deep2")
    plugin(repo, "deep2", "1.0", "ghost>=3")
    old = plugin(tmp_path, "old", "1.0", "core<2", "loop", "deep1", "app>=5")
    err = fails(capsys, ["--repository", str(repo), str(old)])
    assert "4 problems" in err
    assert "no version of app satisfies old 1.0-1 (app>=5) (not in the repository; " in err
    assert "installed: app 1.0-1)" in err
    assert (
        "core would be downgraded from 2.0-1 to 1.5-1 for old 1.0-1 (core<2), "
        "app 1.0-1 (core>=1.5); downgrades are refused"
    ) in err
    assert "ghost is missing: required by deep2 1.0-1 (ghost>=3)" in err
    assert "dependency cycle knot -> loop -> knot" in err
    assert snapshot(rt) == before


def test_uninstalling_a_required_plugin_is_refused_unless_forced(
    upgraded: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, app = upgraded
    rt = Runtime.current()
    before = snapshot(rt)
    assert uninstall_main(["core"]) == 1
    assert "plugin core is required by app 1.0-1 (core>=1.5)" in capsys.readouterr().err
    assert snapshot(rt) == before
    assert uninstall_main(["app"]) == 0
    assert uninstall_main(["core"]) == 0
    assert install_main(["--repository", str(repo), str(app)]) == 0
    assert uninstall_main(["--force", "core"]) == 0
    assert versions(capsys) == {"app": "1.0"}


def test_a_batch_whose_third_postinstall_fails_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    assert install_main([str(plugin(tmp_path, "first", "1.0"))]) == 0
    rt.override("first").write_text("[custom]\ngreeting = mine\n")
    before = snapshot(rt)
    batch = [
        plugin(tmp_path, "first", "2.0"),
        plugin(tmp_path, "second", "1.0", "first>=2"),
        plugin(tmp_path, "third", "1.0", postinstall="#!/bin/sh\necho no disk >&2\nexit 4\n"),
    ]
    err = fails(capsys, ["--upgrade", *map(str, batch)])
    assert "third" in err and "postinstall" in err and "no disk" in err
    assert snapshot(rt) == before
    assert versions(capsys) == {"first": "1.0"}


def _pinned(directory: Path, name: str, version: str, pins: dict[str, str], *requires: str):
    """A `.plugin` whose metadata records `pins` (as a release does), requiring `requires`."""
    text = "".join(f"{n}=={v} --hash=sha256:{'0' * 64}\n" for n, v in pins.items())
    cfg = config_ini(name, version).replace(
        "[custom]", f"_requires = {', '.join(requires)}\n\n[custom]" if requires else "[custom]"
    )
    meta = {"requires": list(requires), "pins": pins}
    files = {"python3_virtualenv_sources/requirements3.txt": text}
    return build_plugin(directory, name, version, config=cfg, meta=meta, files=files)


def test_pins_that_disagree_with_an_inherited_plugin_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    rt = Runtime.current()
    core1 = _pinned(tmp_path, "core", "1.0", {"thepackage": "1.0", "six": "1.16.0"})
    core2 = _pinned(tmp_path, "core", "2.0", {"thepackage": "2.0"})
    app = _pinned(tmp_path, "app", "1.0", {"thepackage": "1.0", "other": "3"}, "core>=1.0")
    bad = _pinned(tmp_path, "app", "1.1", {"thepackage": "1.5"}, "core>=1.0")
    assert install_main([str(core1), str(app)]) == 0
    before = snapshot(rt)

    err = fails(capsys, ["--upgrade", str(bad)])
    assert "plugin app pins thepackage==1.5 but plugin core, which it inherits, pins " in err
    assert "thepackage==1.0" in err and "use --force" in err
    err = fails(capsys, ["--upgrade", str(core2)])  # the requirer's pins count too
    assert "plugin app pins thepackage==1.0 but plugin core, which it inherits, pins " in err
    assert "thepackage==2.0" in err
    assert snapshot(rt) == before

    capsys.readouterr()
    assert install_main(["--dry-run", "--upgrade", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "would refuse (pins; --force installs anyway): plugin app pins thepackage==1.5" in out
    assert snapshot(rt) == before

    assert install_main(["--force", str(bad)]) == 0
    assert "anyway (--force): plugin app pins thepackage==1.5" in caplog.text
    assert versions(capsys) == {"app": "1.1", "core": "1.0"}


def test_rolling_back_a_dependency_to_pins_a_requirer_disagrees_with_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from toolchain.cli.plugins import rollback_main

    core1 = _pinned(tmp_path, "core", "1.0", {"thepackage": "1.0"})
    core2 = _pinned(tmp_path, "core", "2.0", {"thepackage": "2.0"})
    app1 = _pinned(tmp_path, "app", "1.0", {"other": "3"}, "core")
    app2 = _pinned(tmp_path, "app", "2.0", {"thepackage": "2.0"}, "core")
    assert install_main([str(core1), str(app1)]) == 0
    assert install_main(["--upgrade", str(core2)]) == 0
    assert install_main(["--upgrade", str(app2)]) == 0
    capsys.readouterr()
    assert rollback_main(["core"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: rolling back core to 1.0-1 refused: plugin app pins ")
    assert "thepackage==2.0 but plugin core, which it inherits, pins thepackage==1.0" in err
    assert versions(capsys) == {"app": "2.0", "core": "2.0"}
    assert rollback_main(["--force", "core"]) == 0
    assert "rolling back core to 1.0-1 anyway (--force)" in caplog.text
    assert versions(capsys) == {"app": "2.0", "core": "1.0"}
