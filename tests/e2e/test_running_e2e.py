"""End to end: the daemon template released, installed, run, upgraded and uninstalled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cron_fixtures import install_fake_crontab
from tests.support.daemon_fixtures import limits_of, running_pids, wait_for
from tests.support.plugin_dirs import render_default, tool_env
from toolchain.build import freeze, release
from toolchain.cli.plugins import install_main, uninstall_main
from toolchain.cli.services import reload_main
from toolchain.core.layout import PluginDir
from toolchain.running import crontab, services, supervisor

pytestmark = pytest.mark.slow


@pytest.fixture
def home() -> Iterator[Path]:
    """The test's runtime, its process manager running; stopped at the end."""
    runtime = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    runtime.mkdir(parents=True, exist_ok=True)
    services.start(runtime)
    try:
        yield runtime
    finally:
        services.stop(runtime)


def _service(parent: Path, version: str = "0.1.0") -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    root = render_default(parent, "svc", template_name="daemon")
    ini = root / "config.ini"
    text = ini.read_text()
    text = text.replace("_version = 0.1.0", f"_version = {version}")
    text = text.replace("interval = 5", "interval = 0.2")
    text = text.replace("numprocesses = 1", "numprocesses = 2")
    text = text.replace("rlimit_nofile = 0", "rlimit_nofile = 256")
    ini.write_text(text)
    (root / "crontab").write_text(
        "*/10 * * * * echo 'job of {{PLUGINS_CURRENT_PLUGIN_NAME}}:' "
        '"$PLUGINS_CURRENT_PLUGIN_CUSTOM_MESSAGE"\n'
    )
    return root


def _status(*args: str) -> subprocess.CompletedProcess[str]:
    """`plugins.status` run as an operator runs it: the installed console script."""
    script = Path(sys.executable).parent / "plugins.status"
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=tool_env(),
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def _release(root: Path) -> Path:
    plugin = PluginDir(root)
    freeze.freeze(plugin)
    return release.release(plugin)


def test_daemon_plugin_lifecycle(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = install_fake_crontab(tmp_path, monkeypatch)
    table.write_text("0 3 * * * foreign\n")
    first = _release(_service(tmp_path / "v1"))
    assert install_main([str(first)]) == 0

    pids = wait_for("two workers", lambda: running_pids(home, "svc"))
    assert sorted(pids) == ["svc.main.0", "svc.main.1"]
    for pid in pids.values():
        assert limits_of(pid)["Max open files"] == "256"
    log = home / "log" / "svc" / "main.log"
    wait_for("heartbeat", lambda: log.is_file() and "svc is alive" in log.read_text())
    # plugins.status through its console script: each worker's figures read from /proc...
    shown = _status("--json", "svc")
    assert shown.returncode == 0, shown.stderr
    daemons = json.loads(shown.stdout)[0]["daemons"]
    assert {d["name"]: d["pid"] for d in daemons} == pids
    for daemon in daemons:
        used = daemon["resources"]
        assert used["rss_bytes"] > 0 and used["threads"] >= 1 and used["open_files"] >= 3
        assert used["processes"] >= 1 and used["cpu_seconds"] >= 0
    # ...and as Prometheus' textfile collector reads them.
    scraped = _status("--metrics", "svc")
    assert scraped.returncode == 0, scraped.stderr
    samples = [s for f in text_string_to_metric_families(scraped.stdout) for s in f.samples]
    up = {s.labels["worker"]: s.value for s in samples if s.name == "plugin_daemon_up"}
    assert up == {"svc:svc.main.0": 1, "svc:svc.main.1": 1}
    assert {(s.labels["plugin"], s.labels["daemon"]) for s in samples if "worker" in s.labels} == {
        ("svc", "main")
    }
    rss = [s.value for s in samples if s.name == "plugin_daemon_resident_memory_bytes"]
    assert len(rss) == 2 and min(rss) > 0
    lines = crontab.crontab_file(home).read_text().splitlines()
    job = next(line for line in lines if "job of svc" in line)
    assert job in table.read_text() and "foreign" in table.read_text()
    # Run the job as cron would: the command after the five schedule fields, by sh.
    command = job.split(None, 5)[5]
    subprocess.run(["/bin/sh", "-c", command], check=True, env=tool_env())
    cron_log = home / "log" / "svc" / "cron.log"
    assert "job of svc: svc is alive\n" in cron_log.read_text()

    # A configuration change: the operator's override, then plugins.reload.
    override = home / "config" / "plugins" / "svc.ini"
    override.write_text("[extra_daemon_main]\nnumprocesses = 3\n")
    assert reload_main([]) == 0
    pids = wait_for("three workers", lambda: (p := running_pids(home, "svc")) and len(p) == 3 and p)
    # debug = 1: one worker, told so in its environment, whatever numprocesses says.
    override.write_text("[extra_daemon_main]\nnumprocesses = 3\ndebug = 1\n")
    assert reload_main([]) == 0

    def environ(pid: int) -> list[bytes]:
        try:
            return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            return []

    def one_debug_worker() -> bool:
        p = running_pids(home, "svc") or {}
        return len(p) == 1 and b"PLUGINS_CURRENT_DAEMON_DEBUG=1" in environ(*p.values())

    wait_for("one worker, in debug mode", one_debug_worker)
    override.write_text("[extra_daemon_main]\nnumprocesses = 2\n")
    assert reload_main([]) == 0
    pids = wait_for("two workers", lambda: (p := running_pids(home, "svc")) and len(p) == 2 and p)
    assert not [v for pid in pids.values() for v in environ(pid) if b"_DAEMON_DEBUG=" in v]

    second = _release(_service(tmp_path / "v2", "0.2.0"))
    assert install_main(["--upgrade", str(second)]) == 0
    wait_for(
        "restarted workers",
        lambda: (p := running_pids(home, "svc")) and set(p.values()).isdisjoint(pids.values()),
    )
    assert "stopped" in log.read_text()  # SIGTERM handled: a clean stop

    assert uninstall_main(["svc"]) == 0
    assert not [p for p in supervisor.processes(home) if p.plugin == "svc"]
    assert "svc" not in crontab.crontab_file(home).read_text()
    assert table.read_text() == "0 3 * * * foreign\n"


def test_bad_daemon_override_fails_the_install(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = _release(_service(tmp_path / "v1"))
    override = home / "config" / "plugins" / "svc.ini"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("[extra_daemon_main]\nnumprocesses = -1\n")
    assert install_main([str(artifact)]) == 1
    err = capsys.readouterr().err
    assert "svc.ini" in err and "[extra_daemon_main] numprocesses" in err
    assert not [p for p in supervisor.processes(home) if p.plugin == "svc"]


def test_devlinked_daemon_restarts_once_on_an_included_change(home: Path, tmp_path: Path) -> None:
    source = _service(tmp_path / "src")
    (source / "local").symlink_to(sys.prefix)  # stands in for the virtualenv make builds
    assert install_main(["--devlink", str(source)]) == 0
    first = _workers(wait_for("two workers and a watcher", lambda: running_pids(home, "svc")))
    assert len(first) == 2
    watcher_log = home / "log" / "svc" / "autorestart.log"
    wait_for("watcher", lambda: watcher_log.is_file() and "watching" in watcher_log.read_text())

    (source / "tests").mkdir(exist_ok=True)
    (source / "tests" / "test_it.py").write_text("excluded by .autorestart_excludes\n")
    (source / "newpkg").mkdir()
    (source / "newpkg" / "mod.py").write_text("included by .autorestart_includes\n")
    wait_for("restart", lambda: "restarted:" in watcher_log.read_text())
    wait_for(
        "restarted workers",
        lambda: (
            (p := running_pids(home, "svc"))
            and set(_workers(p).values()).isdisjoint(first.values())
        ),
    )
    changed = [line for line in watcher_log.read_text().splitlines() if " changed: " in line]
    assert len(changed) == 1 and changed[0].endswith("changed: newpkg/mod.py")

    assert uninstall_main(["svc"]) == 0
    assert not [p for p in supervisor.processes(home) if p.plugin == "svc"]
    assert source.is_dir()  # only the link went away


def _workers(pids: dict[str, int]) -> dict[str, int]:
    return {name: pid for name, pid in pids.items() if name.startswith("svc.main.")}
