"""The install/uninstall hooks: the runtime's crontab and program files follow the plugins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cron_fixtures import install_fake_crontab
from toolchain.core.errors import CronError
from toolchain.running import crontab, programs, services

# Stands in for plugin_wrapper: a plugin env with the plugin's name, dir and one setting.
FAKE_WRAPPER = """#!/bin/sh
name="$1"; shift; shift
export PLUGINS_CURRENT_PLUGIN_NAME="$name"
export PLUGINS_CURRENT_PLUGIN_DIR="$PLUGIN_RUNTIME_HOME/plugins/$name"
export PLUGINS_CURRENT_PLUGIN_EXTRA_DAEMON_WEB_NUMPROCESSES=3
exec "$@"
"""

CONFIG = """[general]
name = {name}
_version = 1.0
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wrapper = tmp_path / "plugin_wrapper"
    wrapper.write_text(FAKE_WRAPPER, encoding="utf-8")
    wrapper.chmod(0o755)
    real = services.console_script

    def script(name: str) -> Path:
        return wrapper if name == "plugin_wrapper" else real(name)

    monkeypatch.setattr(services, "console_script", script)
    monkeypatch.setattr(programs, "console_script", script)
    return Path(os.environ["PLUGIN_RUNTIME_HOME"])


def _plugin(home: Path, name: str, cron: str | None = None, extra: str = "") -> Path:
    root = home / "plugins" / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.ini").write_text(CONFIG.format(name=name) + extra, encoding="utf-8")
    if cron is not None:
        (root / "crontab").write_text(cron, encoding="utf-8")
    return root


def test_crontab_follows_install_and_uninstall(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = install_fake_crontab(tmp_path, monkeypatch)
    table.write_text("0 3 * * * /usr/local/bin/foreign-backup\n")
    _plugin(home, "alpha", "# c\n*/5 * * * * {{PLUGINS_CURRENT_PLUGIN_DIR}}/bin/run\n")
    services.after_install("alpha", home)
    _plugin(home, "beta", "@daily echo {{ PLUGINS_CURRENT_PLUGIN_NAME }}\n")
    services.after_install("beta", home)
    _plugin(home, "gamma")  # no crontab: no block
    services.after_install("gamma", home)

    generated = crontab.crontab_file(home).read_text()
    assert f"/bin/sh -c {home}/plugins/alpha/bin/run" in generated
    assert "-c 'echo beta'" in generated
    assert "gamma" not in generated
    user = table.read_text()
    assert user.startswith("0 3 * * * /usr/local/bin/foreign-backup\n")
    assert crontab.markers(home, "alpha")[0] in user and crontab.markers(home, "beta")[1] in user

    services.before_uninstall("alpha", home)
    user = table.read_text()
    assert "alpha" not in user and "echo beta" in user
    assert "foreign-backup" in user
    assert "alpha" not in crontab.crontab_file(home).read_text()


def test_missing_variable_keeps_the_previous_block(home: Path) -> None:
    root = _plugin(home, "alpha", "@hourly echo {{PLUGINS_CURRENT_PLUGIN_NAME}}\n")
    _plugin(home, "beta", "@hourly echo ok\n")
    services.reload(home)
    (root / "crontab").write_text("# x\n@hourly echo {{PLUGINS_CURRENT_PLUGIN_CUSTOM_NOPE}}\n")
    (home / "plugins" / "beta" / "crontab").write_text("@daily echo changed\n")
    with pytest.raises(CronError, match=r"plugin alpha: .*crontab:2: variable .*CUSTOM_NOPE"):
        services.reload(home)
    generated = crontab.crontab_file(home).read_text()
    assert "echo alpha" in generated  # the previous, working block
    assert "echo changed" in generated  # the other plugin still regenerated


def test_daemon_programs_follow_the_plugin_env(home: Path) -> None:
    extra = "[extra_daemon_web]\n_cmd_and_args = serve --port 80\nnumprocesses = 1\n"
    _plugin(home, "web", extra=extra)
    override = home / "config" / "plugins" / "web.ini"
    override.parent.mkdir(parents=True)
    override.write_text("[extra_daemon_web]\nnumprocesses = 3\n")
    services.after_install("web", home)
    conf = (programs.config_dir(home) / "web.conf").read_text()
    assert "numprocs = 3" in conf  # the plugin env's value wins over config.ini's
    assert "serve" in (programs.config_dir(home) / "web.json").read_text()
    assert "plugin_autorestart_web" not in conf
    services.before_uninstall("web", home)
    assert not (programs.config_dir(home) / "web.conf").exists()


def test_a_rotating_dns_answer_restarts_no_daemon(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolchain.core.layout import Runtime
    from toolchain.runtime import hostnames, plugin_env

    extra = "[custom]\ndb_hostname = db.example\n[extra_daemon_web]\n_cmd_and_args = serve\n"
    _plugin(home, "web", extra=extra)
    answers = iter(["127.0.0.2", "127.0.0.3"])  # round-robin DNS: cannot be caused here
    monkeypatch.setattr(hostnames, "resolve", lambda host: next(answers))
    first = services.programs_of(home, "web").digest
    plugin_env.drop_cache(Runtime(home), "web")
    assert services.environment(home, "web")["PLUGINS_CURRENT_PLUGIN_CUSTOM_DB_HOSTNAME_IP"] == (
        "127.0.0.3"
    )
    assert services.programs_of(home, "web").digest == first


def test_devlinked_plugin_with_daemons_gets_a_watcher(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "src" / "dev"
    source.mkdir(parents=True)
    (source / "config.ini").write_text(
        CONFIG.format(name="dev") + "[extra_daemon_main]\n_cmd_and_args = run\n"
    )
    (home / "plugins").mkdir(parents=True)
    (home / "plugins" / "dev").symlink_to(source)
    services.after_install("dev", home)
    conf = (programs.config_dir(home) / "dev.conf").read_text()
    assert "[program:plugin_autorestart_dev]" in conf
    assert "programs = dev.main,plugin_autorestart_dev" in conf


@pytest.mark.slow
def test_start_status_stop_commands(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import sys

    from tests.support.daemon_fixtures import SERVICE, running_pids, wait_for
    from toolchain.cli.services import start_main, status_main, stop_main
    from toolchain.running import supervisor

    root = _plugin(
        home, "svc", extra=f"[extra_daemon_web]\n_cmd_and_args = {sys.executable} s.py\n"
    )
    (root / "s.py").write_text(SERVICE)
    override = home / "config" / "plugins" / "svc.ini"
    override.parent.mkdir(parents=True)
    override.write_text("[extra_daemon_web]\nnumprocesses = 3\n")
    try:
        assert status_main([]) == 1
        assert "not running; start it with plugins.start" in capsys.readouterr().err
        assert start_main([]) == 0
        pids = wait_for("three workers", lambda: running_pids(home, "svc"))
        assert len(pids) == 3  # numprocesses from the plugin env
        capsys.readouterr()
        assert status_main(["--json", "svc"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert [row["plugin"] for row in shown] == ["svc"]
        daemons = shown[0]["daemons"]
        assert {d["name"] for d in daemons} == {"svc.web.0", "svc.web.1", "svc.web.2"}
        assert all(d["state"] == "RUNNING" and d["age_s"] >= 0 and d["pid"] for d in daemons)
        assert shown[0]["health"] == {"state": "none", "checks": []}
        assert start_main([]) == 0
        assert "already running" in capsys.readouterr().out
        assert running_pids(home, "svc") == pids
    finally:
        assert stop_main([]) == 0
    assert not supervisor.is_running(home)
    assert stop_main([]) == 0
    assert "not running" in capsys.readouterr().out


def test_hooks_and_cron_wrapper_stay_light() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, toolchain.running.services, toolchain.cli.services, toolchain.cli.cron;"
        "heavy = ('pathspec', 'watchdog', 'supervisor', 'jinja2', 'cookiecutter', 'piptools');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_plugin_env_is_computed_without_running_the_plugins_commands(tmp_path: Path) -> None:
    # The real plugin_wrapper puts the plugin's bin/ first on PATH: a bin/env of the plugin
    # would run, as the operator, if the installer asked `plugin_wrapper NAME -- env`.
    home = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    root = _plugin(home, "sly", "@hourly echo {{PLUGINS_CURRENT_PLUGIN_NAME}}\n")
    marker = tmp_path / "ran"
    (root / "bin").mkdir()
    (root / "bin" / "env").write_text(f'#!/bin/sh\ntouch {marker}\nexec /usr/bin/env "$@"\n')
    (root / "bin" / "env").chmod(0o755)
    services.after_install("sly", home)
    assert "echo sly" in crontab.crontab_file(home).read_text()
    assert not marker.exists()


@pytest.mark.slow
def test_a_daemon_that_cannot_start_fails_start_and_status_with_its_last_lines(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from toolchain.cli.services import start_main, status_main, stop_main
    from toolchain.running import supervisor

    crash = "import sys; print('port 8080 is taken', flush=True); sys.exit(3)"
    _plugin(
        home, "bad", extra=f'[extra_daemon_web]\n_cmd_and_args = {sys.executable} -c "{crash}"\n'
    )
    try:
        assert start_main([]) == 1
        err = capsys.readouterr().err
        assert "bad:bad.web.0: port 8080 is taken" in err
        assert "1 daemon(s) could not start: bad:bad.web.0 (BACKOFF)" in err or "(FATAL)" in err
        assert status_main([]) == 1
        out, err = capsys.readouterr()
        assert "bad:bad.web.0" in out and "not running" in err
        assert status_main(["--json"]) == 1
        assert supervisor.processes(home)[0].state in supervisor.FAILING
    finally:
        assert stop_main([]) == 0
