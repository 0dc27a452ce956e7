"""Daemons run by the real supervisord: workers, limits, logs, respawns, max_age, autorestart."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon_fixtures import FAKE_WRAPPER, SERVICE, limits_of, running_pids, wait_for
from toolchain.running import daemons, max_age, programs, supervisor


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
    programs.write_plugin(home, _programs(home, "old", max_age="1", max_age_variance="3"))
    supervisor.start(home)
    first = wait_for("worker", lambda: running_pids(home, "old"))
    [worker] = [p for p in supervisor.processes(home) if p.pid == first["old.main.0"]]
    wait_for(
        "max_age restart",
        lambda: (p := running_pids(home, "old")) and p["old.main.0"] != first["old.main.0"],
    )
    # Its life was max_age plus its own spread, drawn as the listener draws it.
    info = {"group": "old", "name": "old.main.0", "start": worker.started}
    limit = 1 + max_age.spread(info, 3)
    said = _read(home / "log" / "max_age.log")
    assert re.search(rf"restarting old:old\.main\.0: age \d+s >= max_age {limit}s", said), said


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _watched_devlink(
    home: Path, tmp_path: Path, excludes: str | None = None
) -> tuple[Path, dict[str, int], Path]:
    """A devlinked plugin `dev` (includes `*.py`) whose daemon and file watcher run:
    (its source, the daemon's pids, the watcher's log)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / ".autorestart_includes").write_text("*.py\n")
    if excludes is not None:
        (source / ".autorestart_excludes").write_text(excludes)
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
    return source, first, watcher_log


@pytest.mark.slow
def test_autorestart_of_a_devlinked_plugin(home: Path, tmp_path: Path) -> None:
    source, first, watcher_log = _watched_devlink(home, tmp_path, excludes="skip_*.py\n")

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


def test_autorestart_reads_its_pattern_files_again_when_they_change(
    home: Path, tmp_path: Path
) -> None:
    source, first, watcher_log = _watched_devlink(home, tmp_path)

    (source / ".autorestart_includes").write_text("*.py\n*.tmpl\n")
    wait_for("patterns", lambda: "patterns read again" in _read(watcher_log), timeout=10)
    (source / "page.tmpl").write_text("now watched\n")
    wait_for("restart", lambda: "restarted:" in _read(watcher_log), timeout=20)
    after = wait_for("daemon again", lambda: running_pids(home, "dev"))
    assert after["dev.main.0"] != first["dev.main.0"]
    changed = [line for line in _read(watcher_log).splitlines() if " changed: " in line]
    assert [line.rpartition("changed: ")[2] for line in changed] == ["page.tmpl"]
