"""The runtime's process manager: supervisord, its configuration and its control socket.

One supervisord per runtime, listening on a unix socket only its user can open. Each
plugin with daemons is one process group, described by `config/supervisor.d/NAME.conf`
(programs) and `NAME.json` (what each program executes, read by `daemon_exec`); the
commands themselves never go through supervisor's ini syntax, whose inline comments and
`%` expansion would change them. Only this module imports supervisor.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import xmlrpc.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.daemons import Daemon, log_dir, log_files
from toolchain.errors import ProcessManagerError
from toolchain.runner import clean_env, run
from toolchain.scripts import console_script, interpreter

MAX_AGE_LISTENER = "plugin_max_age"
_WORKER = "%(process_num)d"
LOG_MAX_BYTES = "10MB"
LOG_BACKUPS = 5
# AF_UNIX paths are limited to 108 bytes, NUL included.
_SOCKET_MAX = 100
# Variables of the caller that the daemons' plugin env depends on.
_PASSED = ("PLUGIN_RUNTIME_HOME", "PLUGIN_MODULE", "PLUGIN_CONFIG_NAME", "PLUGIN_PROVISIONING_DIR")


def config_dir(home: Path) -> Path:
    """Directory of the per-plugin program files."""
    return home / "config" / "supervisor.d"


def main_config(home: Path) -> Path:
    """supervisord's main configuration file."""
    return home / "config" / "supervisord.conf"


def pid_file(home: Path) -> Path:
    """supervisord's pid file."""
    return home / "run" / "supervisord.pid"


def daemon_log(home: Path) -> Path:
    """supervisord's own log."""
    return home / "log" / "supervisord.log"


def socket_path(home: Path) -> Path:
    """The control socket: in the runtime, or in a short private dir when that is too long."""
    inside = home / "run" / "supervisor.sock"
    if len(os.fsencode(inside)) <= _SOCKET_MAX:
        return inside
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:16]
    return Path("/tmp") / f"plg-{digest}" / "supervisor.sock"


def _prepare_socket_dir(path: Path) -> None:
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.lstat()
    if directory.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ProcessManagerError(
            f"{directory}: not a private directory of this user; remove it and retry"
        )


def _ini(value: str | Path, what: str) -> str:
    """A value written into supervisor's ini: `%` doubled, no comment or line break."""
    text = str(value)
    if "\n" in text or " ;" in text or " #" in text:
        raise ProcessManagerError(f"{what}: {text!r} cannot be written into supervisor's config")
    return text.replace("%", "%%")


def _environment(values: Mapping[str, str], what: str) -> str:
    items = []
    for key, value in sorted(values.items()):
        if '"' in value or "\\" in value:
            raise ProcessManagerError(f"{what}: {key}={value!r} holds a quote or backslash")
        items.append(f'{key}="{_ini(value, what)}"')
    return ",".join(items)


def render_main(home: Path) -> str:
    """supervisord's main configuration for runtime `home`."""
    sock = socket_path(home)
    passed = {k: os.environ[k] for k in _PASSED if os.environ.get(k)}
    passed["PLUGIN_RUNTIME_HOME"] = str(home)
    lines = [
        f"; Generated for the plugins runtime {home}; do not edit.",
        "[unix_http_server]",
        f"file = {_ini(sock, 'socket')}",
        "chmod = 0700",
        "",
        "[supervisord]",
        f"logfile = {_ini(daemon_log(home), 'log')}",
        f"logfile_maxbytes = {LOG_MAX_BYTES}",
        "logfile_backups = 3",
        f"pidfile = {_ini(pid_file(home), 'pidfile')}",
        f"directory = {_ini(home, 'runtime')}",
        f"childlogdir = {_ini(home / 'log', 'log')}",
        f"identifier = plugins-{hashlib.sha256(os.fsencode(home)).hexdigest()[:12]}",
        f"environment = {_environment(passed, 'environment')}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl = unix://{_ini(sock, 'socket')}",
        "",
        f"[eventlistener:{MAX_AGE_LISTENER}]",
        f"command = {_ini(interpreter(), 'python')} -m toolchain.max_age "
        f"{_ini(config_dir(home), 'config')}",
        "events = TICK_5",
        "stdout_logfile = NONE",
        "autorestart = true",
        f"stderr_logfile = {_ini(home / 'log' / 'max_age.log', 'log')}",
        f"stderr_logfile_maxbytes = {LOG_MAX_BYTES}",
        "stderr_logfile_backups = 1",
        "",
        "[include]",
        f"files = {_ini(config_dir(home), 'config')}/*.conf",
        "",
    ]
    return "\n".join(lines)


def _ini_log(path: Path, what: str) -> str:
    """A log file path for supervisor's ini, keeping its `%(process_num)d` expansion."""
    parts = str(path).split(_WORKER)
    return _WORKER.join(_ini(part, what) for part in parts)


def autorestart_program(plugin: str) -> str:
    """The program name of a devlinked plugin's file watcher (plugin names never start so)."""
    return f"plugin_autorestart_{plugin}"


def _program(home: Path, daemon: Daemon, spec: Path, plugin_dir: Path, digest: str) -> list[str]:
    what = f"plugin {daemon.plugin} [extra_daemon_{daemon.name}]"
    worker = _WORKER if daemon.split_workers else None
    out, err = log_files(home, daemon, worker)
    lines = [
        f"[program:{daemon.program}]",
        f"command = {_ini(interpreter(), what)} -m toolchain.daemon_exec "
        f"{_ini(spec, what)} {_ini(daemon.name, what)}",
        "process_name = %(program_name)s.%(process_num)d",
        f"numprocs = {daemon.numprocesses}",
        f"directory = {_ini(plugin_dir, what)}",
        "autostart = true",
        "autorestart = true",
        "startsecs = 1",
        "startretries = 5",
        "stopsignal = TERM",
        f"stopwaitsecs = {daemon.graceful_timeout}",
        "stopasgroup = true",
        "killasgroup = true",
        f"stdout_logfile = {_ini_log(out, what)}",
        f"stdout_logfile_maxbytes = {LOG_MAX_BYTES}",
        f"stdout_logfile_backups = {LOG_BACKUPS}",
        f'environment = PLUGIN_CONFIG_DIGEST="{digest}"',
    ]
    if err is None:
        lines.append("redirect_stderr = true")
    else:
        lines += [
            f"stderr_logfile = {_ini_log(err, what)}",
            f"stderr_logfile_maxbytes = {LOG_MAX_BYTES}",
            f"stderr_logfile_backups = {LOG_BACKUPS}",
        ]
    return [*lines, ""]


@dataclass(frozen=True)
class PluginPrograms:
    """What the process manager runs for one plugin."""

    plugin: str
    plugin_dir: Path
    daemons: list[Daemon]
    watch: bool
    digest: str


def write_plugin(home: Path, programs: PluginPrograms) -> None:
    """Write (or, without daemons, remove) the program files of one plugin."""
    if not programs.daemons:
        remove_plugin(home, programs.plugin)
        return
    directory = config_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    log_dir(home, programs.plugin).mkdir(parents=True, exist_ok=True)
    spec = directory / f"{programs.plugin}.json"
    wrapper = str(console_script("plugin_wrapper"))
    doc: dict[str, Any] = {
        "plugin": programs.plugin,
        "daemons": {
            d.name: {
                "program": d.program,
                "exec": [wrapper, programs.plugin, "--", *d.argv],
                "rlimits": d.rlimits,
                "max_age": d.max_age,
            }
            for d in programs.daemons
        },
    }
    names = [d.program for d in programs.daemons]
    lines = [f"; Generated for plugin {programs.plugin}; do not edit.", ""]
    for daemon in programs.daemons:
        lines += _program(home, daemon, spec, programs.plugin_dir, programs.digest)
    if programs.watch:
        name = autorestart_program(programs.plugin)
        names.append(name)
        what = f"plugin {programs.plugin} autorestart"
        lines += [
            f"[program:{name}]",
            f"command = {_ini(interpreter(), what)} -m toolchain.autorestart "
            f"{_ini(programs.plugin, what)} {_ini(programs.plugin_dir, what)}",
            f"directory = {_ini(programs.plugin_dir, what)}",
            "autostart = true",
            "autorestart = true",
            "stopsignal = TERM",
            "stopwaitsecs = 5",
            "redirect_stderr = true",
            f"stdout_logfile = {_ini(log_dir(home, programs.plugin) / 'autorestart.log', what)}",
            f"stdout_logfile_maxbytes = {LOG_MAX_BYTES}",
            "stdout_logfile_backups = 1",
            "",
        ]
    lines += [f"[group:{programs.plugin}]", f"programs = {','.join(names)}", ""]
    _write(spec, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    _write(directory / f"{programs.plugin}.conf", "\n".join(lines))


def remove_plugin(home: Path, plugin: str) -> None:
    """Remove the program files of one plugin."""
    for suffix in (".conf", ".json"):
        (config_dir(home) / f"{plugin}{suffix}").unlink(missing_ok=True)


def configured_plugins(home: Path) -> list[str]:
    """Plugins that have program files."""
    directory = config_dir(home)
    return sorted(p.stem for p in directory.glob("*.conf")) if directory.is_dir() else []


def _write(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
    _prepare_socket_dir(sock)
    sock.unlink(missing_ok=True)
    for directory in (config_dir(home), pid_file(home).parent, home / "log"):
        directory.mkdir(parents=True, exist_ok=True)
    _write(main_config(home), render_main(home))
    env = clean_env()
    env.update({k: os.environ[k] for k in _PASSED if os.environ.get(k)})
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

    @property
    def spec(self) -> str:
        """`group:name`, as supervisor names it."""
        return f"{self.group}:{self.name}"


def processes(home: Path) -> list[Process]:
    """Every process of the runtime's supervisord."""
    try:
        with client(home, timeout=30) as proxy:
            infos = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        raise ProcessManagerError(f"supervisord of {home} not reachable: {exc}") from None
    return [
        Process(i["group"], i["name"], i["statename"], int(i["pid"]), i["description"])
        for i in infos
    ]


def _call(proxy: Any, method: str, *args: Any) -> Any:
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
    added, changed, removed = _call(proxy, "reloadConfig")[0]
    scope = None if plugins is None else {*plugins, MAX_AGE_LISTENER}
    for group in [*removed, *changed]:
        if scope is None or group in scope:
            _call(proxy, "stopProcessGroup", group, True)
            _call(proxy, "removeProcessGroup", group)
    for group in [*added, *changed]:
        if scope is None or group in scope:
            _call(proxy, "addProcessGroup", group)
    if restart and plugins is not None:
        running = {p.group for p in processes(home)}
        for group in plugins:
            if group in running and group not in added and group not in changed:
                _call(proxy, "stopProcessGroup", group, True)
                _call(proxy, "startProcessGroup", group, False)


def restart_programs(home: Path, plugin: str, programs: Iterable[str]) -> list[str]:
    """Restart the processes of `programs` in `plugin`'s group; return their specs."""
    wanted = set(programs)
    chosen = [
        p for p in processes(home) if p.group == plugin and p.name.rsplit(".", 1)[0] in wanted
    ]
    with client(home) as proxy:
        for process in chosen:
            if process.state in ("RUNNING", "STARTING", "BACKOFF"):
                _call(proxy, "stopProcess", process.spec, True)
        for process in chosen:
            _call(proxy, "startProcess", process.spec, False)
    return [p.spec for p in chosen]
