"""A daemon's port is held by its runtime and shared by its own workers only.

Two runtimes of the same user (a developer's copy and a production one) with the same
plugin on the same port: with SO_REUSEPORT the kernel would split the traffic between
them. The runtime binds the port without it (`running.sockets`), so the second
`plugins.start` must fail, naming the port and who holds it, and the first keep every
request; a program holding the port with SO_REUSEPORT is refused too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_templates_e2e import NAME, _free_port, _run, _script
from tests.support.daemon_fixtures import running_pids, wait_for
from tests.support.plugin_dirs import tool_env
from toolchain.artifact import spec
from toolchain.running import supervisor

pytestmark = pytest.mark.slow


def _start(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script("plugins.start")], capture_output=True, text=True,
        env=tool_env(PLUGIN_RUNTIME_HOME=str(home)), stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def _pid_answering(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
        return int(json.load(answer)["pid"])


def test_a_port_held_by_another_runtime_or_program_fails_the_start(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _run([_script("bootstrap_plugin.py"), "create", "--no-input", "--template", "web", NAME],
         cwd=src)  # fmt: skip
    _run(["make", "-C", str(src / NAME), "release"])
    artifact = src / NAME / f"{NAME}-0.1.0-1.{spec.platform_tag()}.plugin"
    port = _free_port()
    homes = [tmp_path / "production", tmp_path / "development"]
    try:
        for home in homes:
            override = home / "config" / "plugins" / f"{NAME}.ini"
            override.parent.mkdir(parents=True)
            override.write_text(f"[extra_daemon_web]\nlisten = 127.0.0.1:{port}\n")
            _run([_script("plugins.install"), str(artifact)], PLUGIN_RUNTIME_HOME=str(home))
        production, development = homes

        first = _start(production)
        assert first.returncode == 0, first.stdout + first.stderr
        workers = wait_for("both workers", lambda: running_pids(production, NAME), timeout=30)
        assert len(workers) == 2  # siblings share the port
        wait_for("GET /health", lambda: _pid_answering(port), timeout=20)
        # plugins.status: both workers running, and the template's health URL answering
        status = subprocess.run(
            [_script("plugins.status"), "--json", NAME], capture_output=True, text=True,
            env=tool_env(PLUGIN_RUNTIME_HOME=str(production)), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)[0]
        assert {d["pid"] for d in shown["daemons"]} == set(workers.values())
        assert all(d["state"] == "RUNNING" for d in shown["daemons"])
        assert shown["health"]["state"] == "ok", shown["health"]

        second = _start(development)
        assert second.returncode == 1, second.stdout + second.stderr
        held = f"cannot listen on 127.0.0.1:{port}: Address already in use by pid"
        assert held in second.stderr, second.stderr
        # Every request still reaches the production workers.
        answered = {_pid_answering(port) for _ in range(40)}
        assert answered <= set(workers.values()), (answered, workers)
        assert supervisor.stop(development)

        # A program that sets SO_REUSEPORT itself is no sibling either.
        _run([_script("plugins.stop")], PLUGIN_RUNTIME_HOME=str(production))
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            third = _start(production)
        assert third.returncode == 1, third.stdout + third.stderr
        assert f"Address already in use by pid {os.getpid()}" in third.stderr, third.stderr
    finally:
        for home in homes:
            supervisor.stop(home)
