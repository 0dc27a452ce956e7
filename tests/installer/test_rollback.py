"""The archive of replaced versions and plugins.rollback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.installer.test_dependencies import plugin, snapshot, versions
from tests.support.plugin_factory import build_plugin
from toolchain.cli.plugins import check_main, install_main, rollback_main
from toolchain.core import settings
from toolchain.core.errors import ToolchainError
from toolchain.core.layout import Runtime
from toolchain.installer import archive, journal
from toolchain.runtime import plugin_env


def alpha_of(rt: Runtime, name: str) -> str:
    """What the `alpha` console script of the plugin's virtualenv prints."""
    out = subprocess.run(
        [str(rt.plugin(name) / "local" / "bin" / "alpha")], capture_output=True, text=True
    )
    return out.stdout.strip()


def test_rollback_restores_files_and_venv_and_keeps_overrides(
    tmp_path: Path,
    wheels: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rt = Runtime.current()
    alpha1, alpha2 = (wheels / f"alpha-{v}-py3-none-any.whl" for v in ("1.0", "2.0"))
    assert install_main([str(build_plugin(tmp_path, "hello", "1.0", wheels=[alpha1]))]) == 0
    rt.override("hello").write_text("[custom]\ngreeting = mine\n")
    assert rollback_main(["hello"]) == 1
    assert "no archived version" in capsys.readouterr().err

    monkeypatch.setenv("PLUGIN_ARCHIVE_KEEP", "1")
    for version, wheel in (("2.0", alpha2), ("3.0", alpha1)):
        new = build_plugin(tmp_path, "hello", version, wheels=[wheel])
        assert install_main(["--upgrade", str(new)]) == 0
    assert [a.label for a in archive.versions(rt, "hello")] == ["2.0-1"]  # 1.0 was pruned
    assert versions(capsys)["hello"] == "3.0"
    assert alpha_of(rt, "hello") == "alpha 1.0"

    assert rollback_main(["hello"]) == 0
    assert capsys.readouterr().out == "rolled back hello from 3.0-1 to 2.0-1\n"
    assert versions(capsys)["hello"] == "2.0"
    helper = rt.plugin("hello") / "lib" / "hello_helper.py"
    assert helper.read_text() == "VERSION = '2.0'\n"
    assert alpha_of(rt, "hello") == "alpha 2.0"
    assert check_main(["hello"]) == 0
    assert rt.override("hello").read_text() == "[custom]\ngreeting = mine\n"
    env = plugin_env.variables(rt, "hello", rt.plugin("hello"))
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "mine"
    assert archive.versions(rt, "hello") == []  # the restored version left the archive
    assert len(list(rt.venvs.iterdir())) == 1
    assert rollback_main(["hello"]) == 1  # the cancelled 3.0 was not archived
    assert "nothing to roll back to" in capsys.readouterr().err


def test_rollback_fails_cleanly_and_respects_requirers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    assert install_main([str(plugin(tmp_path, "core", "1.0"))]) == 0
    assert install_main(["--upgrade", str(plugin(tmp_path, "core", "2.0"))]) == 0
    assert install_main([str(plugin(tmp_path, "app", "1.0", "core>=2"))]) == 0
    before = snapshot(rt)
    capsys.readouterr()
    assert rollback_main(["core"]) == 1
    err = capsys.readouterr().err
    assert "core 1.0-1 cannot come back: app 1.0-1 requires core>=2" in err
    assert snapshot(rt) == before

    # a failure while swapping leaves the current version and the archive as they were
    def broken(*args: object, **kwargs: object) -> None:
        raise ToolchainError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(journal, "commit", broken)
        assert rollback_main(["--force", "core"]) == 1
    assert "disk full" in capsys.readouterr().err
    assert snapshot(rt) == before
    assert rollback_main(["--force", "core"]) == 0
    assert versions(capsys) == {"app": "1.0", "core": "1.0"}


def test_archive_keep_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.archive_keep() == settings.DEFAULT_ARCHIVE_KEEP
    monkeypatch.setenv("PLUGIN_ARCHIVE_KEEP", "0")
    assert settings.archive_keep() == 0
    for bad in ("x", "-1"):
        monkeypatch.setenv("PLUGIN_ARCHIVE_KEEP", bad)
        with pytest.raises(ToolchainError, match="PLUGIN_ARCHIVE_KEEP"):
            settings.archive_keep()


def test_console_scripts_exist() -> None:
    bindir = Path(sys.executable).parent
    for script in ("plugins.rollback", "plugins.provision"):
        out = subprocess.run([str(bindir / script), "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and script in out.stdout


@pytest.mark.parametrize("point", ["staging-renamed", "backup-archived"])
def test_sigkill_around_archiving_keeps_the_previous_version(
    tmp_path: Path, point: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    assert install_main([str(build_plugin(tmp_path, "hello", "1.0"))]) == 0
    new = build_plugin(tmp_path, "hello", "2.0")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "plugins.install"), "--upgrade", str(new)],
        env={**os.environ, settings.FAILPOINT: point},
        capture_output=True,
        start_new_session=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    assert versions(capsys) == {"hello": "2.0"}  # recovery completes the commit
    assert [a.label for a in archive.versions(rt, "hello")] == ["1.0-1"]
    assert sorted(p.name for p in rt.plugins.iterdir()) == ["hello"]
    assert rollback_main(["hello"]) == 0
    assert versions(capsys) == {"hello": "1.0"}


def _upgraded(tmp_path: Path) -> Runtime:
    rt = Runtime.current()
    assert install_main([str(build_plugin(tmp_path, "hello", "1.0"))]) == 0
    assert install_main(["--upgrade", str(build_plugin(tmp_path, "hello", "2.0"))]) == 0
    assert [a.label for a in archive.versions(rt, "hello")] == ["1.0-1"]
    return rt


def test_an_uninstalled_plugin_is_not_rolled_back_and_its_archive_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolchain.cli.plugins import uninstall_main

    rt = _upgraded(tmp_path)
    (rt.logs / "hello").mkdir(parents=True, exist_ok=True)
    (rt.logs / "hello" / "cron.log").write_text("kept\n")
    assert uninstall_main(["hello"]) == 0
    assert not (rt.archive / "hello").exists() and not (rt.tmp / "hello").exists()
    assert (rt.logs / "hello" / "cron.log").read_text() == "kept\n"  # the operator's record
    capsys.readouterr()
    assert rollback_main(["hello"]) == 1
    err = capsys.readouterr().err
    assert "hello is not installed" in err and "plugins.install FILE" in err
    assert not rt.plugin("hello").exists()
    assert install_main([str(build_plugin(tmp_path, "hello", "1.0"))]) == 0
    assert uninstall_main(["--clean", "hello"]) == 0
    assert not (rt.logs / "hello").exists() and not rt.override("hello").exists()


def test_a_tampered_archived_version_is_not_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = _upgraded(tmp_path)
    (archived,) = archive.versions(rt, "hello")
    (archived.path / "bin" / "hello").write_text("#!/bin/sh\necho owned\n")
    capsys.readouterr()
    assert rollback_main(["hello"]) == 1
    err = capsys.readouterr().err
    assert "archived 1.0-1 differs from its manifest ('bin/hello'" in err
    assert versions(capsys)["hello"] == "2.0"
