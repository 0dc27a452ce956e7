"""Daemons: `[extra_daemon_*]` parsing and the real supervisord running them."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon_fixtures import FAKE_WRAPPER, SERVICE, limits_of, running_pids, wait_for
from toolchain.config import schema
from toolchain.core.errors import ConfigError
from toolchain.running import daemons, max_age, programs, supervisor


def test_defaults_and_values_are_parsed() -> None:
    merged = {
        "general": {"name": "p"},
        "extra_daemon_web": {
            "_cmd_and_args": "serve --port 8000 'a b'",
            "numprocesses": "3",
            "rlimit_nofile": "100",
            "rlimit_as": "0",
            "log_split_stdout_stderr": "yes",
        },
        "extra_daemon_aux": {"_cmd_and_args": "aux"},
    }
    aux, web = daemons.daemons_of("p", merged)
    assert (aux.name, aux.numprocesses, aux.graceful_timeout, aux.max_age) == ("aux", 1, 10, 0)
    assert aux.rlimits == {} and not aux.split_streams and not aux.split_workers
    assert web.argv == ["serve", "--port", "8000", "a b"]
    assert web.program == "p.web"
    assert web.numprocesses == 3 and web.rlimits == {"RLIMIT_NOFILE": 100}
    assert web.split_streams


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("numprocesses", "-2", r"\[extra_daemon_x\] numprocesses: -2 is below the minimum 1"),
        ("numprocesses", "0", r"\[extra_daemon_x\] numprocesses: 0 is below the minimum 1"),
        ("graceful_timeout", "soon", r"\[extra_daemon_x\] graceful_timeout: 'soon' is not"),
        ("rlimit_as", "-1", r"\[extra_daemon_x\] rlimit_as: -1 is below the minimum 0"),
        ("color", "blue", r"\[extra_daemon_x\] unknown key 'color'"),
    ],
)
def test_bad_daemon_values_name_section_and_key(key: str, value: str, message: str) -> None:
    raw = {
        "general": {"name": "p", "_version": "1.0"},
        "extra_daemon_x": {"_cmd_and_args": "run", key: value},
    }
    with pytest.raises(ConfigError, match=rf"config.ini: {message}"):
        schema.validate(raw, "config.ini")


def test_missing_command_is_named() -> None:
    raw = {"general": {"name": "p", "_version": "1.0"}, "extra_daemon_x": {"numprocesses": "2"}}
    with pytest.raises(
        ConfigError, match=r"\[extra_daemon_x\] missing required key '_cmd_and_args'"
    ):
        schema.validate(raw, "config.ini")
    with pytest.raises(ConfigError, match=r"plugin p: \[extra_daemon_x\] missing required key"):
        daemons.daemons_of("p", raw)


def test_program_files_escape_percent_and_keep_commands_out_of_the_ini(tmp_path: Path) -> None:
    home = tmp_path / "rt"
    merged = {
        "extra_daemon_w": {
            "_cmd_and_args": "run --fmt '%Y ; # not a comment'",
            "numprocesses": "2",
            "log_split_multiple_workers": "1",
            "log_split_stdout_stderr": "1",
        }
    }
    found = daemons.daemons_of("p", merged)
    plugin_dir = home / "plugins" / "p"
    programs.write_plugin(home, programs.PluginPrograms("p", plugin_dir, found, False, "d"))
    conf = (programs.config_dir(home) / "p.conf").read_text()
    assert "not a comment" not in conf
    assert f"stdout_logfile = {home}/log/p/w.%(process_num)d.stdout.log" in conf
    assert f"stderr_logfile = {home}/log/p/w.%(process_num)d.stderr.log" in conf
    assert "numprocs = 2" in conf and "[group:p]" in conf
    spec = (programs.config_dir(home) / "p.json").read_text()
    assert "%Y ; # not a comment" in spec


def test_socket_path_stays_short(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90) / "runtime"
    assert len(os.fsencode(programs.socket_path(deep))) <= 100
    assert programs.socket_path(Path("/r")) == Path("/r/run/supervisor.sock")


def test_max_age_picks_the_oldest_overdue_worker_per_program() -> None:
    infos = [
        {"group": "p", "name": "p.w.0", "statename": "RUNNING", "start": 0, "now": 100},
        {"group": "p", "name": "p.w.1", "statename": "RUNNING", "start": 10, "now": 100},
        {"group": "p", "name": "p.v.0", "statename": "RUNNING", "start": 95, "now": 100},
        {"group": "p", "name": "p.u.0", "statename": "STARTING", "start": 0, "now": 100},
    ]
    ages = {"p.w": 50, "p.v": 50, "p.u": 1}
    assert max_age.too_old(infos, ages) == [("p:p.w.0", 100, 50)]


# --- the real process manager -------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime whose plugin_wrapper is a stand-in; its supervisord is stopped at the end."""
    wrapper = tmp_path / "plugin_wrapper"
    wrapper.write_text(FAKE_WRAPPER, encoding="utf-8")
    wrapper.chmod(0o755)
    monkeypatch.setattr(programs, "console_script", lambda name: wrapper)
    runtime = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    (runtime / "plugins").mkdir(parents=True)
    try:
        yield runtime
    finally:
        supervisor.stop(runtime)


def _programs(home: Path, name: str, **section: str) -> programs.PluginPrograms:
    plugin_dir = home / "plugins" / name
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "service.py").write_text(SERVICE, encoding="utf-8")
    values = {"_cmd_and_args": f"{sys.executable} service.py", **section}
    found = daemons.daemons_of(name, {"extra_daemon_main": values})
    digest = str(sorted(values.items()))
    return programs.PluginPrograms(name, plugin_dir, found, False, digest)


@pytest.mark.slow
def test_workers_run_with_count_limits_and_logs_and_are_respawned(home: Path) -> None:
    programs.write_plugin(
        home,
        _programs(
            home,
            "svc",
            numprocesses="2",
            rlimit_nofile="321",
            rlimit_fsize="1048576",
            log_split_stdout_stderr="1",
        ),
    )
    assert supervisor.start(home)
    assert not supervisor.start(home)
    pids = wait_for("two workers", lambda: running_pids(home, "svc"))
    assert sorted(pids) == ["svc.main.0", "svc.main.1"]
    for pid in pids.values():
        limits = limits_of(pid)
        assert limits["Max open files"] == "321"
        assert limits["Max file size"] == "1048576"
    out = home / "log" / "svc" / "main.stdout.log"
    err = home / "log" / "svc" / "main.stderr.log"
    for pid in pids.values():
        wait_for(f"stdout log {pid}", lambda pid=pid: f"started {pid} svc" in _read(out))
        wait_for("stderr log", lambda pid=pid: f"to stderr {pid}" in _read(err))
    assert "to stderr" not in _read(out)

    os.kill(pids["svc.main.0"], signal.SIGKILL)
    respawned = wait_for(
        "respawn",
        lambda: (p := running_pids(home, "svc")) and p["svc.main.0"] != pids["svc.main.0"] and p,
    )
    assert respawned["svc.main.1"] == pids["svc.main.1"]

    # Upgrade: the same group restarted; uninstall: removed, its workers stopped.
    supervisor.apply(home, ["svc"], restart=True)
    restarted = wait_for(
        "restart",
        lambda: (
            (p := running_pids(home, "svc"))
            and set(p.values()).isdisjoint(respawned.values())
            and p
        ),
    )
    programs.remove_plugin(home, "svc")
    supervisor.apply(home, ["svc"])
    assert not [p for p in supervisor.processes(home) if p.group == "svc"]
    for pid in restarted.values():
        wait_for("worker gone", lambda pid=pid: not Path(f"/proc/{pid}").exists())
    assert supervisor.stop(home)
    assert not supervisor.is_running(home)


@pytest.mark.slow
def test_only_the_changed_plugin_is_touched(home: Path) -> None:
    programs.write_plugin(home, _programs(home, "one"))
    programs.write_plugin(home, _programs(home, "two"))
    supervisor.start(home)
    one = wait_for("one", lambda: running_pids(home, "one"))
    two = wait_for("two", lambda: running_pids(home, "two"))
    programs.write_plugin(home, _programs(home, "two", numprocesses="2"))
    supervisor.apply(home, ["two"])
    wait_for("two workers", lambda: (p := running_pids(home, "two")) and len(p) == 2)
    assert running_pids(home, "one") == one
    assert running_pids(home, "two") != two


@pytest.mark.slow
def test_worker_older_than_max_age_is_restarted(home: Path) -> None:
    programs.write_plugin(home, _programs(home, "old", max_age="1"))
    supervisor.start(home)
    first = wait_for("worker", lambda: running_pids(home, "old"))
    wait_for(
        "max_age restart",
        lambda: (p := running_pids(home, "old")) and p["old.main.0"] != first["old.main.0"],
    )
    assert "restarting old:old.main.0" in _read(home / "log" / "max_age.log")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def test_autorestart_matcher(tmp_path: Path) -> None:
    from toolchain.running.autorestart import Matcher

    (tmp_path / ".autorestart_includes").write_text("*.py\nconf/\n!conf/*.bak\n")
    (tmp_path / ".autorestart_excludes").write_text("tests/\n")
    matcher = Matcher(tmp_path)
    assert matcher.matches("a.py") and matcher.matches("deep/new/b.py")
    assert matcher.matches("conf/x.yaml") and not matcher.matches("conf/x.bak")
    assert not matcher.matches("tests/test_a.py") and not matcher.matches("notes.txt")
    assert not matcher.matches("local/lib/x.py") and not matcher.matches("__pycache__/a.py")
    assert matcher.relative(str(tmp_path / "d" / "f")) == "d/f"
    assert matcher.relative(str(tmp_path.parent / "f")) is None


@pytest.mark.slow
def test_autorestart_of_a_devlinked_plugin(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / ".autorestart_includes").write_text("*.py\n")
    (source / ".autorestart_excludes").write_text("skip_*.py\n")
    (home / "plugins" / "dev").symlink_to(source)
    dev = _programs(home, "dev")
    programs.write_plugin(
        home,
        programs.PluginPrograms("dev", dev.plugin_dir, dev.daemons, True, "d"),
    )
    supervisor.start(home)
    first = wait_for("daemon", lambda: running_pids(home, "dev"))
    watcher_log = home / "log" / "dev" / "autorestart.log"
    wait_for("watcher", lambda: "watching" in _read(watcher_log))

    (source / "skip_me.py").write_text("excluded\n")
    (source / "newdir").mkdir()
    (source / "newdir" / "mod.py").write_text("included\n")
    wait_for("restart", lambda: "restarted:" in _read(watcher_log))
    after = wait_for("daemon again", lambda: running_pids(home, "dev"))
    daemon = "dev.main.0"
    assert after[daemon] != first[daemon]
    changed = [line for line in _read(watcher_log).splitlines() if " changed: " in line]
    assert len(changed) == 1
    assert changed[0].endswith("changed: newdir/mod.py")
    assert _read(home / "log" / "dev" / "main.log").count("started ") == 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("numprocesses = 1", "numprocesses = -1", r"numprocesses: -1 is below the minimum 1"),
        ("max_age = 0", "max_age = 0\nworkers = 2", r"unknown key 'workers'"),
        ("_cmd_and_args = svc\n", "", r"missing required key '_cmd_and_args'"),
    ],
)
def test_bad_daemon_section_fails_the_release(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    from tests.support.plugin_dirs import render_default
    from toolchain.build import release
    from toolchain.core.layout import PluginDir

    root = render_default(tmp_path, "svc", template_name="daemon")
    ini = root / "config.ini"
    ini.write_text(ini.read_text().replace(old, new))
    with pytest.raises(ConfigError, match=rf"config.ini: \[extra_daemon_main\] {message}"):
        release.release(PluginDir(root))
