"""plugins.provision: install what is new, replace what differs by content, nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.installer.test_dependencies import plugin, snapshot, versions
from tests.support.plugin_factory import build_plugin, write_tree
from toolchain.artifact.spec import artifact_name
from toolchain.cli.plugins import install_main, provision_main
from toolchain.core.layout import Runtime
from toolchain.installer import repository
from toolchain.runtime import plugin_env


def provision(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    capsys.readouterr()
    assert provision_main(list(argv)) == 0
    return capsys.readouterr().out.splitlines()


def test_provisioning_is_idempotent_and_leaves_devlinks_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    source = write_tree(tmp_path / "src" / "dev", "dev", "0.1")
    assert install_main(["--devlink", str(source)]) == 0
    assert install_main([str(plugin(tmp_path, "extra", "1.0"))]) == 0
    fleet = tmp_path / "fleet"
    plugin(fleet, "core", "1.0")
    plugin(fleet, "app", "1.0", "core>=1")
    plugin(fleet, "dev", "9.0")
    repository_file = plugin(tmp_path / "other", "core", "0.9")  # an older one, elsewhere
    shutil.copy(repository_file, fleet)

    assert provision(capsys, "--dry-run", str(fleet)) == [
        "would install app: app 1.0-1",
        "would install core: core 1.0-1",
        f"devlinked dev: devlinked to {source}, dev 9.0-1 left aside",
        f"kept extra: extra 1.0-1 is not in {fleet}",
    ]
    assert set(versions(capsys)) == {"dev", "extra"}
    assert provision(capsys, str(fleet)) == [
        "install app: app 1.0-1",
        "install core: core 1.0-1",
        f"devlinked dev: devlinked to {source}, dev 9.0-1 left aside",
        f"kept extra: extra 1.0-1 is not in {fleet}",
    ]
    assert versions(capsys) == {"app": "1.0", "core": "1.0", "dev": "0.1", "extra": "1.0"}
    assert rt.plugin("dev").is_symlink()

    # the second run changes nothing
    rt.override("core").write_text("[custom]\ngreeting = op\n")
    before = snapshot(rt)
    assert provision(capsys, str(fleet))[:2] == [
        f"unchanged app: app 1.0-1 is identical to {artifact_name('app', '1.0', '1')}",
        f"unchanged core: core 1.0-1 is identical to {artifact_name('core', '1.0', '1')}",
    ]
    assert snapshot(rt) == before

    # same version, other content: replaced; the OP override stays, and the provisioning
    # override is applied on top of it
    for old in fleet.glob("core-1.0-*"):
        old.unlink()
    plugin(fleet, "core", "1.0", files={"lib/new.py": "X = 1\n"})
    lines = provision(capsys, str(fleet))
    assert "upgrade core: core 1.0-1 -> 1.0-1 (content differs)" in lines
    assert "unchanged app: " in lines[0]
    assert (rt.plugin("core") / "lib" / "new.py").is_file()
    assert rt.override("core").read_text() == "[custom]\ngreeting = op\n"
    env = plugin_env.variables(rt, "core", rt.plugin("core"))
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "op"
    provisioning = tmp_path / "provisioning"
    provisioning.mkdir()
    (provisioning / "core.ini").write_text("[custom]\ngreeting = provisioned\n")
    monkeypatch.setenv("PLUGIN_PROVISIONING_DIR", str(provisioning))
    env = plugin_env.variables(rt, "core", rt.plugin("core"))
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "provisioned"
    assert provision(capsys, str(fleet))[1].startswith("unchanged core: ")


def test_content_hash_ignores_build_metadata(tmp_path: Path) -> None:
    one = build_plugin(tmp_path / "a", "hello", "1.0", meta={"build_host": "one"})
    two = build_plugin(tmp_path / "b", "hello", "1.0", meta={"build_date": "2030-01-01"})
    other = build_plugin(tmp_path / "c", "hello", "1.0", files={"extra.txt": "x"})
    assert repository.file_hash(one) == repository.file_hash(two)
    assert repository.file_hash(one) != repository.file_hash(other)


def test_provisioning_errors_list_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = tmp_path / "fleet"
    plugin(fleet, "app", "1.0", "core>=2", "lib")
    plugin(fleet, "core", "1.0")
    assert provision_main([str(fleet)]) == 1
    err = capsys.readouterr().err
    assert "2 problems" in err and "core 1.0-1 is given, but app 1.0-1 (core>=2)" in err
    assert "lib is missing: required by app 1.0-1" in err
    assert versions(capsys) == {}
    assert provision_main([str(tmp_path / "nowhere")]) == 2


def test_a_damaged_entry_is_replaced_and_blocks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    broken = write_tree(rt.plugins / "broken", "broken", "1.0")  # no metadata, no manifest
    fleet = tmp_path / "fleet"
    plugin(fleet, "broken", "1.0")
    plugin(fleet, "fine", "1.0")
    assert provision(capsys, str(fleet)) == [
        "install broken: broken 1.0-1",
        "install fine: fine 1.0-1",
    ]
    assert (broken / ".release" / "manifest.json").is_file()
    assert provision(capsys, str(fleet))[0].startswith("unchanged broken: ")
