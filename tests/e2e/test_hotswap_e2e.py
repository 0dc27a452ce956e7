"""Upgrades of a running web plugin: no failed request, and a failing version goes back.

The web template's plugin on a loopback port, with a client loop running throughout
(two threads, one connection per request, at most 5000 requests or a minute): v1 -> v2
swaps the workers with zero failed requests and the answers switch to v2; v3, with v2's
configuration but code whose health check fails, makes `plugins.install` exit 1 with the
check's output while v2 keeps answering, zero failed requests, and `plugins.list` shows
v2; `plugins.rollback` then swaps back to v1 the same way. `plugins.status` exits 0 or 1
in each state; a SIGKILL in the middle of a swap leaves one version serving, and the next
command ends on one (the previous one when the new one fails its check).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_templates_e2e import _free_port, _script
from tests.support.daemon_fixtures import running_pids, wait_for
from tests.support.plugin_dirs import tool_env
from tests.support.traffic import Traffic
from toolchain.artifact import spec
from toolchain.running import supervisor

pytestmark = pytest.mark.slow

NAME = "swapweb"


def _cmd(
    home: Path, *argv: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(argv[0]), *argv[1:]], capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env=tool_env(PLUGIN_RUNTIME_HOME=str(home), **env), timeout=180, cwd=cwd,
    )  # fmt: skip


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _releases(src: Path) -> dict[str, Path]:
    """v1, v2 (another greeting) and v3 (a health check that fails) of the web template."""
    _ok(_cmd(src, "bootstrap_plugin.py", "create", "--no-input", "--template", "web", NAME,
             cwd=src))  # fmt: skip
    plugin, made = src / NAME, {}
    config = plugin / "config.ini"
    server = plugin / "bin" / NAME
    for label, version, greeting in [("v1", "1.0.0", "v1"), ("v2", "2.0.0", "v2"),
                                     ("v3", "3.0.0", "v2")]:  # fmt: skip
        text = re.sub(r"(?m)^_version = .*$", f"_version = {version}", config.read_text())
        config.write_text(re.sub(r"(?m)^greeting = .*$", f"greeting = {greeting}", text))
        if label == "v3":  # the same configuration as v2 (but its version), broken code
            code = server.read_text().replace(
                'self.reply(200, "application/json"', 'self.reply(503, "application/json"'
            )
            server.write_text(code.replace('setting("CUSTOM_GREETING") + "\\n"', '"v3\\n"'))
        subprocess.run(["make", "-s", "-C", str(plugin), "release"], check=True,
                       capture_output=True, env=tool_env())  # fmt: skip
        made[label] = plugin / f"{NAME}-{version}-1.{spec.platform_tag()}.plugin"
    return made


def _states(home: Path) -> set[str]:
    """The /proc states of the plugin's workers (T: stopped by a signal)."""
    found = set()
    for process in supervisor.processes(home):
        if process.plugin == NAME and process.pid:
            stat = Path(f"/proc/{process.pid}/stat").read_text()
            found.add(stat[stat.rindex(")") + 2])
    return found


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _releases(tmp_path_factory.mktemp("releases"))


def _runtime(home: Path, port: int, first: Path) -> Path:
    """A runtime with v1 installed on `port`; the override file's path."""
    override = home / "config" / "plugins" / f"{NAME}.ini"
    override.parent.mkdir(parents=True)
    override.write_text(f"[extra_daemon_web]\nlisten = 127.0.0.1:{port}\n")
    _ok(_cmd(home, "plugins.install", str(first)))
    return override


def test_upgrades_swap_workers_without_a_failed_request_and_roll_back_a_failing_one(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    home, port = tmp_path / "runtime", _free_port()
    override = _runtime(home, port, files["v1"])
    assert _cmd(home, "plugins.status", NAME).returncode == 1  # installed, manager not started
    _ok(_cmd(home, "plugins.start"))
    traffic = None
    try:
        first = wait_for("v1 workers", lambda: running_pids(home, NAME), timeout=30)
        assert _cmd(home, "plugins.status", NAME).returncode == 0
        traffic = Traffic(f"http://127.0.0.1:{port}/")
        wait_for("v1 answering", lambda: traffic.counts()["v1"] > 50 or None, timeout=20)

        upgraded = _ok(_cmd(home, "plugins.install", "--upgrade", str(files["v2"])))
        assert f"replaced {NAME} 1.0.0-1 with 2.0.0-1" in upgraded
        after_v2 = time.monotonic()
        wait_for("v2 answering", lambda: traffic.since(after_v2)["v2"] > 50 or None, timeout=20)
        assert set(traffic.since(after_v2)) == {"v2"}  # the old workers are gone
        second = running_pids(home, NAME)
        assert second and not set(second.values()) & set(first.values())
        status = _cmd(home, "plugins.status", "--json", NAME)
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)[0]
        assert shown["health"]["state"] == "ok" and len(shown["daemons"]) == 2
        assert all(d["restarts"] == 0 for d in shown["daemons"])

        failed = _cmd(home, "plugins.install", "--upgrade", str(files["v3"]))
        after_v3 = time.monotonic()
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert f"extra_daemon_web: GET http://127.0.0.1:{port}/health: HTTP 503" in failed.stderr
        assert (
            failed.stderr.strip()
            .splitlines()[-1]
            .startswith(f"ERROR: plugin {NAME} 3.0.0-1 failed its health checks")
        ), failed.stderr
        assert "2.0.0-1 is back in place" in failed.stderr
        assert running_pids(home, NAME) == second  # the v2 workers never stopped
        assert _states(home) <= {"S", "R"}  # none left paused
        wait_for("v2 answering", lambda: traffic.since(after_v3)["v2"] > 50 or None, timeout=20)
        assert set(traffic.since(after_v3)) == {"v2"}
        listed = _ok(_cmd(home, "plugins.list"))
        assert re.search(rf"(?m)^{NAME}\s+2\.0\.0\s+1\s", listed), listed

        # A worker killed: restarted by the process manager, counted, still healthy.
        victim = next(iter(second.values()))
        os.kill(victim, signal.SIGKILL)
        wait_for("a new worker", lambda: ((p := running_pids(home, NAME)) and victim not in
                 p.values() and len(p) == 2) or None, timeout=30)  # fmt: skip
        shown = json.loads(_ok(_cmd(home, "plugins.status", "--json", NAME)))[0]
        assert sorted(d["restarts"] for d in shown["daemons"]) == [0, 1]
        # A check failing now: exit 1 naming it; fixed again: exit 0.
        override.write_text(override.read_text() + "healthcheck_url = /nosuch\n")
        sick = _cmd(home, "plugins.status", NAME)
        assert sick.returncode == 1 and "failing their health checks" in sick.stderr
        override.write_text(f"[extra_daemon_web]\nlisten = 127.0.0.1:{port}\n")
        assert _cmd(home, "plugins.status", NAME).returncode == 0
        # plugins.rollback swaps the same way: back to v1, no request lost.
        assert "from 2.0.0-1 to 1.0.0-1" in _ok(_cmd(home, "plugins.rollback", NAME))
        after_rollback = time.monotonic()
        wait_for("v1 again", lambda: traffic.since(after_rollback)["v1"] > 50 or None, 20)
        assert set(traffic.since(after_rollback)) == {"v1"}

        traffic.stop()
        assert traffic.failures == [], traffic.failures[:5]
        total = sum(traffic.counts().values())
        assert 1000 <= total <= 5000, total
        assert traffic.counts()["v3"] < total / 10  # held between checks: it served little
    finally:
        if traffic is not None:
            traffic.stop()
        supervisor.stop(home)
    assert _cmd(home, "plugins.status", NAME).returncode == 1  # the manager stopped


@pytest.mark.parametrize(
    ("point", "target", "ends_on"),
    [("hotswap-started", "v2", "v2"), ("hotswap-checking", "v2", "v2"),
     ("hotswap-checking", "v3", "v1")],  # v3 fails its check: v1 comes back
)  # fmt: skip
def test_a_swap_killed_half_way_keeps_serving_and_the_next_command_ends_on_one_version(
    tmp_path: Path, files: dict[str, Path], point: str, target: str, ends_on: str
) -> None:
    home, port = tmp_path / "runtime", _free_port()
    _runtime(home, port, files["v1"])
    _ok(_cmd(home, "plugins.start"))
    traffic = None
    try:
        wait_for("v1 workers", lambda: running_pids(home, NAME), timeout=30)
        traffic = Traffic(f"http://127.0.0.1:{port}/")
        wait_for("v1 answering", lambda: traffic.counts()["v1"] > 20 or None, timeout=20)
        killed = _cmd(
            home, "plugins.install", "--upgrade", str(files[target]), PLUGIN_FAILPOINT=point
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        # Old and new workers both up, one side maybe paused: the port still answers.
        after_kill = time.monotonic()
        wait_for("answers", lambda: sum(traffic.since(after_kill).values()) > 50 or None, 20)
        # The next command finishes the commit and its swap: v2 alone, nothing paused.
        _ok(_cmd(home, "plugins.reload"))
        after = time.monotonic()
        wait_for(ends_on, lambda: traffic.since(after)[ends_on] > 50 or None, timeout=20)
        assert set(traffic.since(after)) == {ends_on}
        assert {p.group for p in supervisor.processes(home) if p.plugin == NAME} == {
            next(p.group for p in supervisor.processes(home) if p.plugin == NAME)
        }
        assert _states(home) <= {"S", "R"}
        version = {"v1": "1.0.0", "v2": "2.0.0"}[ends_on]
        assert re.search(rf"(?m)^{NAME}\s+{version}\s", _ok(_cmd(home, "plugins.list")))
        assert _cmd(home, "plugins.status", NAME).returncode == 0
        traffic.stop()
        assert traffic.failures == [], traffic.failures[:5]
    finally:
        if traffic is not None:
            traffic.stop()
        supervisor.stop(home)
