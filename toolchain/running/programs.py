"""The process manager's configuration: supervisord.conf and one program file per plugin.

One supervisord per runtime, listening on a unix socket only its user can open. Each
plugin with daemons is one process group, described by `config/supervisor.d/NAME.conf`
(programs) and `GROUP.json` (what each program executes, read by `daemon_exec`); the
commands themselves never go through supervisor's ini syntax, whose inline comments and
`%` expansion would change them.

A plugin's group is `NAME` or `NAME@b`: an upgrade starts the new version's group in the
other slot while the old one still serves (`hotswap`). NAME.conf names the group that
should run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.core import settings
from toolchain.core.errors import ProcessManagerError
from toolchain.core.scripts import console_script, interpreter
from toolchain.running.daemons import Daemon, log_dir, log_files

MAX_AGE_LISTENER = "plugin_max_age"
SLOT_B = "@b"  # plugin names hold no '@'
_GROUP_LINE = "[group:"
_WORKER = "%(process_num)d"
LOG_MAX_BYTES = "10MB"
LOG_BACKUPS = 5
# AF_UNIX paths are limited to 108 bytes, NUL included.
_SOCKET_MAX = 100


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


def sockets_path(home: Path) -> Path:
    """Where workers ask for their listening sockets (`sockets`), beside the control socket."""
    return socket_path(home).with_name("sockets.sock")


def plugin_of(group: str) -> str:
    """The plugin a process group belongs to."""
    return group.removesuffix(SLOT_B)


def other_slot(group: str) -> str:
    """The group the next version of `group`'s plugin starts in."""
    return plugin_of(group) if group.endswith(SLOT_B) else group + SLOT_B


def prepare_socket_dir(path: Path) -> None:
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
    passed = settings.passed_to_daemons()
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
        "[rpcinterface:plugin_sockets]",
        "supervisor.rpcinterface_factory = toolchain.running.sockets:make_interface",
        f"path = {_ini(sockets_path(home), 'socket')}",
        f"specs = {_ini(config_dir(home), 'config')}",
        "",
        "[supervisorctl]",
        f"serverurl = unix://{_ini(sock, 'socket')}",
        "",
        f"[eventlistener:{MAX_AGE_LISTENER}]",
        f"command = {_ini(interpreter(), 'python')} -m toolchain.running.max_age "
        f"{_ini(config_dir(home), 'config')}",
        "events = TICK_5,PROCESS_STATE_STARTING,PROCESS_GROUP_ADDED",
        "buffer_size = 200",  # it blocks while it restarts a worker: events wait meanwhile
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


def debug_variable() -> str:
    """`{MODULE}_CURRENT_DAEMON_DEBUG`, set to 1 for the workers of a `debug = 1` daemon."""
    return f"{settings.module_name()}_CURRENT_DAEMON_DEBUG".upper().replace("-", "_")


def _worker_environment(daemon: Daemon, digest: str) -> dict[str, str]:
    values = {"PLUGIN_CONFIG_DIGEST": digest}
    if daemon.debug:
        values[debug_variable()] = "1"
    return values


def _program(home: Path, daemon: Daemon, spec: Path, plugin_dir: Path, digest: str) -> list[str]:
    what = f"plugin {daemon.plugin} [extra_daemon_{daemon.name}]"
    worker = _WORKER if daemon.split_workers else None
    out, err = log_files(home, daemon, worker)
    lines = [
        f"[program:{daemon.program}]",
        f"command = {_ini(interpreter(), what)} -m toolchain.running.daemon_exec "
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
        f"environment = {_environment(_worker_environment(daemon, digest), what)}",
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
    group: str = ""  # its process group: the plugin's name (slot a) or NAME@b

    @property
    def group_name(self) -> str:
        return self.group or self.plugin


def configured_group(home: Path, plugin: str) -> str | None:
    """The group NAME.conf runs for `plugin`; None without program files."""
    try:
        text = (config_dir(home) / f"{plugin}.conf").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(_GROUP_LINE) and line.endswith("]"):
            return line[len(_GROUP_LINE) : -1]
    return None


def write_plugin(home: Path, programs: PluginPrograms) -> None:
    """Write (or, without daemons, remove) the program files of one plugin."""
    if not programs.daemons:
        remove_plugin(home, programs.plugin)
        return
    config_dir(home).mkdir(parents=True, exist_ok=True)
    log_dir(home, programs.plugin).mkdir(parents=True, exist_ok=True)
    for path, text in render_plugin(home, programs).items():
        write_if_changed(path, text)


def is_written(home: Path, programs: PluginPrograms) -> bool:
    """Whether the program files of `programs` are on disk as they would be written."""
    for path, text in render_plugin(home, programs).items():
        try:
            if path.read_text(encoding="utf-8") != text:
                return False
        except OSError:
            return False
    return True


def render_plugin(home: Path, programs: PluginPrograms) -> dict[Path, str]:
    """{path: text} of the program files of one plugin with daemons."""
    directory = config_dir(home)
    group = programs.group_name
    spec = directory / f"{group}.json"
    wrapper = str(console_script("plugin_wrapper"))
    doc: dict[str, Any] = {
        "plugin": programs.plugin,
        "sockets": str(sockets_path(home)),
        "daemons": {
            d.name: {
                "program": d.program,
                "exec": [wrapper, programs.plugin, "--", *d.argv],
                "rlimits": d.rlimits,
                "max_age": d.max_age,
                "max_age_variance": d.max_age_variance,
                "listen": d.listen,
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
            f"command = {_ini(interpreter(), what)} -m toolchain.running.autorestart "
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
    lines += [f"{_GROUP_LINE}{group}]", f"programs = {','.join(names)}", ""]
    return {
        spec: json.dumps(doc, indent=1, sort_keys=True) + "\n",
        directory / f"{programs.plugin}.conf": "\n".join(lines),
    }


def remove_spec(home: Path, group: str) -> None:
    """Remove what a group's workers read once that group is gone."""
    (config_dir(home) / f"{group}.json").unlink(missing_ok=True)


def remove_plugin(home: Path, plugin: str) -> None:
    """Remove the program files of one plugin."""
    (config_dir(home) / f"{plugin}.conf").unlink(missing_ok=True)
    for group in (plugin, plugin + SLOT_B):
        remove_spec(home, group)


def configured_plugins(home: Path) -> list[str]:
    """Plugins that have program files."""
    directory = config_dir(home)
    return sorted(p.stem for p in directory.glob("*.conf")) if directory.is_dir() else []


def write_if_changed(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, unless it holds that already."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
