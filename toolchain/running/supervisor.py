"""The runtime's process manager: starting supervisord and talking to its control socket.

Only this module and the processes supervisord runs (`max_age`, `autorestart`) talk to
supervisord; the configuration it reads is written by `programs`.
"""

from __future__ import annotations

import os
import socket
import time
import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.core import settings
from toolchain.core.errors import ProcessManagerError
from toolchain.core.runner import clean_env, run
from toolchain.core.scripts import interpreter
from toolchain.running.programs import (
    MAX_AGE_LISTENER,
    config_dir,
    daemon_log,
    main_config,
    pid_file,
    plugin_of,
    prepare_socket_dir,
    remove_spec,
    render_main,
    socket_path,
    write_if_changed,
)


class _UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's unix socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> Any:
        import http.client

        path, timeout = self._path, self._timeout

        class _Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(str(path))
                except OSError:
                    sock.close()
                    raise
                self.sock = sock

        # Kept like the base class does, so that closing the proxy closes the socket.
        if self._connection[1] is None or self._connection[0] != host:
            self._connection = host, _Connection("localhost")
        return self._connection[1]


def client(home: Path, timeout: float = 300.0) -> Any:
    """An XML-RPC proxy to the runtime's supervisord."""
    transport = _UnixTransport(socket_path(home), timeout)
    return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport)


def is_running(home: Path) -> bool:
    """Whether the runtime's supervisord answers on its socket."""
    if not socket_path(home).exists():
        return False
    try:
        with client(home, timeout=10) as proxy:
            state = proxy.supervisor.getState()
    except (OSError, xmlrpc.client.Error):
        return False
    return bool(state.get("statename") in ("RUNNING", "RESTARTING"))


def _log_tail(home: Path) -> str:
    try:
        lines = daemon_log(home).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no log"
    return " | ".join(line.strip() for line in lines[-3:]) or "empty log"


def start(home: Path, wait: float = 60.0) -> bool:
    """Start the runtime's supervisord; False when it was already running."""
    if is_running(home):
        return False
    sock = socket_path(home)
    prepare_socket_dir(sock)
    sock.unlink(missing_ok=True)
    for directory in (config_dir(home), pid_file(home).parent, home / "log"):
        directory.mkdir(parents=True, exist_ok=True)
    write_if_changed(main_config(home), render_main(home))
    env = clean_env()
    env.update(settings.passed_to_daemons())
    env["PLUGIN_RUNTIME_HOME"] = str(home)
    run(
        [interpreter(), "-m", "supervisor.supervisord", "-c", main_config(home)],
        cwd=home,
        env=env,
        what="supervisord",
    )
    deadline = time.monotonic() + wait
    while not is_running(home):
        if time.monotonic() > deadline:
            raise ProcessManagerError(
                f"supervisord of {home} did not answer within {wait:g}s: {_log_tail(home)}"
            )
        time.sleep(0.1)
    return True


def _pid(home: Path) -> int | None:
    try:
        return int(pid_file(home).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(home: Path, wait: float = 300.0) -> bool:
    """Stop every daemon gracefully, then supervisord; False when it was not running."""
    if not is_running(home):
        return False
    pid = _pid(home)
    try:
        with client(home) as proxy:
            proxy.supervisor.shutdown()
    except (OSError, xmlrpc.client.Error) as exc:
        raise ProcessManagerError(f"supervisord of {home}: shutdown failed: {exc}") from None
    deadline = time.monotonic() + wait
    while (pid is not None and _alive(pid)) or socket_path(home).exists():
        if time.monotonic() > deadline:
            raise ProcessManagerError(
                f"supervisord of {home} still running after {wait:g}s: {_log_tail(home)}"
            )
        time.sleep(0.1)
    return True


@dataclass(frozen=True)
class Process:
    """One process known to the process manager."""

    group: str
    name: str
    state: str
    pid: int
    description: str
    started: int = 0  # when it last started (epoch seconds), 0 if never

    @property
    def spec(self) -> str:
        """`group:name`, as supervisor names it."""
        return f"{self.group}:{self.name}"

    @property
    def plugin(self) -> str:
        """The plugin it is a worker of (its group is the plugin's, in either slot)."""
        return plugin_of(self.group)


def processes(home: Path) -> list[Process]:
    """Every process of the runtime's supervisord."""
    try:
        with client(home, timeout=30) as proxy:
            infos = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        raise ProcessManagerError(f"supervisord of {home} not reachable: {exc}") from None
    return [
        Process(
            i["group"],
            i["name"],
            i["statename"],
            int(i["pid"]),
            i["description"],
            int(i.get("start") or 0),
        )
        for i in infos
    ]


# States of a process that is not doing its job (supervisor's names).
FAILING = frozenset({"BACKOFF", "FATAL", "EXITED", "UNKNOWN"})


def settle(
    home: Path, plugins: Iterable[str] | None = None, wait: float = 15.0, by_group: bool = False
) -> list[Process]:
    """Wait until no process (of `plugins`, or of these groups) is still STARTING; return
    those failing."""
    wanted = set(plugins) if plugins is not None else None
    deadline = time.monotonic() + wait
    while True:
        found = [
            p
            for p in processes(home)
            if wanted is None or (p.group if by_group else p.plugin) in wanted
        ]
        if not any(p.state == "STARTING" for p in found) or time.monotonic() > deadline:
            return [p for p in found if p.state in FAILING]
        time.sleep(0.2)


def log_tail(home: Path, process: Process, lines: int = 5) -> list[str]:
    """The last lines a process wrote (its stdout log, where its stderr goes by default)."""
    try:
        with client(home, timeout=30) as proxy:
            text, _offset, _overflow = proxy.supervisor.tailProcessStdoutLog(process.spec, 0, 4096)
    except (OSError, xmlrpc.client.Error):
        return []
    return [line for line in str(text).splitlines() if line.strip()][-lines:]


def call(proxy: Any, method: str, *args: Any) -> Any:
    """One XML-RPC call; a fault or a lost socket is one ProcessManagerError."""
    try:
        return getattr(proxy.supervisor, method)(*args)
    except xmlrpc.client.Fault as exc:
        raise ProcessManagerError(f"supervisord {method}{args}: {exc.faultString}") from None
    except OSError as exc:
        raise ProcessManagerError(f"supervisord {method}{args}: {exc}") from None


def apply(home: Path, plugins: Iterable[str] | None = None, *, restart: bool = False) -> None:
    """Make the running supervisord follow its configuration files.

    Limited to the groups of `plugins` (None: every group); groups whose configuration
    changed are replaced, removed ones stopped; with `restart`, unchanged groups of
    `plugins` are restarted too.
    """
    with client(home) as proxy:
        _apply(home, proxy, None if plugins is None else list(plugins), restart)


def _apply(home: Path, proxy: Any, plugins: list[str] | None, restart: bool) -> None:
    added, changed, removed = call(proxy, "reloadConfig")[0]
    scope = None if plugins is None else {*plugins, MAX_AGE_LISTENER}
    for group in [*removed, *changed]:
        if scope is None or plugin_of(group) in scope:
            call(proxy, "stopProcessGroup", group, True)
            call(proxy, "removeProcessGroup", group)
            if group in removed:
                remove_spec(home, group)
    for group in [*added, *changed]:
        if scope is None or plugin_of(group) in scope:
            call(proxy, "addProcessGroup", group)
    if restart and plugins is not None:
        running = {p.group for p in processes(home)}
        for group in sorted(running):
            if plugin_of(group) in plugins and group not in added and group not in changed:
                call(proxy, "stopProcessGroup", group, True)
                call(proxy, "startProcessGroup", group, False)


def restart_programs(home: Path, plugin: str, programs: Iterable[str]) -> list[str]:
    """Restart the processes of `programs` in `plugin`'s group; return their specs."""
    wanted = set(programs)
    chosen = [
        p for p in processes(home) if p.plugin == plugin and p.name.rsplit(".", 1)[0] in wanted
    ]
    with client(home) as proxy:
        for process in chosen:
            if process.state in ("RUNNING", "STARTING", "BACKOFF"):
                call(proxy, "stopProcess", process.spec, True)
        for process in chosen:
            call(proxy, "startProcess", process.spec, False)
    return [p.spec for p in chosen]
