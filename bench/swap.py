"""Case 8: upgrading a running web plugin while clients call it.

The web template's plugin, v1 then v2 (another greeting), in two runtimes on their own
loopback ports, each with its process manager running and a client loop (two threads, one
connection per request) calling it throughout. Ours: `plugins.install --upgrade v2`, which
swaps the workers (`running.hotswap`). Baseline: a plain stop-and-start, `plugins.stop;
plugins.install --upgrade v2; plugins.start`. Measured: the time from the command's start
to the first answer of v2, and the requests that failed meanwhile. Between runs v1 comes
back with `plugins.install --force` (untimed).
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from inputs import offline_env, sh, tool
from measure import BenchError, Row, Sample

NAME = "swapbench"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Clients:
    """Two threads calling `url` until stopped (at most 120 s); answers and failures, timed."""

    def __init__(self, url: str) -> None:
        self.url, self.first_v2, self.failed, self.total = url, 0.0, 0, 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._end = time.monotonic() + 120
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._end:
            try:
                with urllib.request.urlopen(self.url, timeout=30) as answer:
                    body = answer.read().decode().strip()
                with self._lock:
                    self.total += 1
                    if body == "v2" and not self.first_v2:
                        self.first_v2 = time.monotonic()
            except Exception:  # refused, reset: a failed request
                with self._lock:
                    self.total, self.failed = self.total + 1, self.failed + 1
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def _releases(work: Path) -> tuple[Path, Path]:
    sh([tool("bootstrap_plugin.py"), "create", "--no-input", "--template", "web", NAME], cwd=work)
    root, made = work / NAME, []
    for version in ("1.0.0", "2.0.0"):
        config = root / "config.ini"
        text = re.sub(r"(?m)^_version = .*$", f"_version = {version}", config.read_text())
        config.write_text(re.sub(r"(?m)^greeting = .*$", f"greeting = v{version[0]}", text))
        sh(["make", "-s", "-C", root, "release"])
        made.append(next(root.glob(f"{NAME}-{version}-1.*.plugin")))
    return made[0], made[1]


def _upgrade_once(
    env: dict[str, str], url: str, argvs: list[list[str | Path]]
) -> tuple[float, int, int]:
    clients = _Clients(url)
    time.sleep(0.5)
    start = time.monotonic()
    for argv in argvs:
        sh(argv, env=env)
    deadline = time.monotonic() + 60
    while not clients.first_v2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    clients.stop()
    if not clients.first_v2:
        raise BenchError(f"{url}: v2 never answered")
    return clients.first_v2 - start, clients.failed, clients.total


def hotswap(reps: int, work: Path) -> list[Row]:
    """Case 8, ours against the stop-and-start baseline, alternately."""
    v1, v2 = _releases(work)
    runs: dict[str, list[tuple[float, int, int]]] = {"ours": [], "base": []}
    envs, urls = {}, {}
    for kind in runs:
        port = _port()
        env = offline_env(PLUGIN_RUNTIME_HOME=str(work / f"runtime-{kind}"))
        override = work / f"runtime-{kind}" / "config" / "plugins" / f"{NAME}.ini"
        override.parent.mkdir(parents=True)
        override.write_text(f"[extra_daemon_web]\nlisten = 127.0.0.1:{port}\n")
        sh([tool("plugins.install"), v1], env=env)
        sh([tool("plugins.start")], env=env)
        envs[kind], urls[kind] = env, f"http://127.0.0.1:{port}/"
    upgrade = [tool("plugins.install"), "--upgrade", v2]
    commands = {
        "ours": [upgrade],
        "base": [[tool("plugins.stop")], upgrade, [tool("plugins.start")]],
    }
    try:
        for _ in range(reps):
            for kind in runs:
                sh([tool("plugins.install"), "--force", v1], env=envs[kind])
                time.sleep(1)
                runs[kind].append(_upgrade_once(envs[kind], urls[kind], commands[kind]))
    finally:
        for env in envs.values():
            subprocess.run([tool("plugins.stop")], env=env, capture_output=True, check=False)
    row = Row(
        "8 upgrade a running web plugin: until v2 answers",
        "plugins.install --upgrade (workers swapped)",
        "plugins.stop; plugins.install --upgrade; plugins.start",
        "0 failed requests",
        None,
    )
    row.ours_runs = [Sample(s, 0.0) for s, _f, _t in runs["ours"]]
    row.base_runs = [Sample(s, 0.0) for s, _f, _t in runs["base"]]
    failed = {
        kind: (sum(f for _s, f, _t in r), sum(t for _s, _f, t in r)) for kind, r in runs.items()
    }
    row.met_override = failed["ours"][0] == 0
    row.note = (
        f"failed requests during the upgrades: ours {failed['ours'][0]} of {failed['ours'][1]}, "
        f"baseline {failed['base'][0]} of {failed['base'][1]}"
    )
    return [row]
