"""Daemons: `[extra_daemon_*]` parsing and the real supervisord running them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolchain.config import schema
from toolchain.core.errors import ConfigError
from toolchain.running import daemons, max_age, programs


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
    ages = {"p.w": (50, 0), "p.v": (50, 0), "p.u": (1, 0)}
    assert max_age.too_old(infos, ages) == [("p:p.w.0", 100, 50)]


def test_max_age_variance_spreads_the_workers_restarts() -> None:
    started = [
        {"group": "p", "name": f"p.w.{i}", "statename": "RUNNING", "start": 1000, "now": 1000}
        for i in range(20)
    ]
    limits = [60 + max_age.spread(info, 30) for info in started]
    assert all(60 <= limit <= 90 for limit in limits)
    assert len(set(limits)) > 5  # started together, restarted apart
    assert limits == [60 + max_age.spread(info, 30) for info in started]  # the same each tick
    one = started[0]
    for now in range(1000, 1100):
        due = max_age.too_old([{**one, "now": now}], {"p.w": (60, 30)})
        if due:
            break
    assert now - 1000 == limits[0] and due == [("p:p.w.0", limits[0], limits[0])]


def test_debug_runs_one_worker_without_max_age() -> None:
    merged = {
        "extra_daemon_w": {"_cmd_and_args": "w", "numprocesses": "4", "max_age": "60",
                           "max_age_variance": "10", "debug": "1"},
    }  # fmt: skip
    [w] = daemons.daemons_of("p", merged)
    assert (w.numprocesses, w.max_age, w.max_age_variance, w.debug) == (1, 0, 10, True)
    merged["extra_daemon_w"]["debug"] = "0"
    [w] = daemons.daemons_of("p", merged)
    assert (w.numprocesses, w.max_age, w.debug) == (4, 60, False)


# --- the real process manager -------------------------------------------------------


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
