"""A plugin's `[extra_daemon_NAME]` sections, read from its effective configuration.

Pure data: what to run, how many workers, limits and log files. The process manager
module turns it into its own configuration.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.config.schema import DAEMON, DAEMON_PREFIX
from toolchain.core.errors import ConfigError

# `rlimit_KEY` keys, by the name of their `resource.RLIMIT_*` constant.
RLIMITS = {"rlimit_as": "RLIMIT_AS", "rlimit_nofile": "RLIMIT_NOFILE"}
RLIMITS |= {"rlimit_stack": "RLIMIT_STACK", "rlimit_fsize": "RLIMIT_FSIZE"}
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Daemon:
    """One `[extra_daemon_NAME]` section of a plugin, with its values parsed."""

    plugin: str
    name: str
    argv: list[str]
    numprocesses: int = 1
    graceful_timeout: int = 10
    max_age: int = 0
    max_age_variance: int = 0
    debug: bool = False  # one worker, no max_age, ..._CURRENT_DAEMON_DEBUG=1
    rlimits: dict[str, int] = field(default_factory=dict)
    split_streams: bool = False
    split_workers: bool = False
    listen: str = ""  # HOST:PORT the runtime holds for its workers (running.sockets)

    @property
    def program(self) -> str:
        """The process manager's program name (plugin names hold no dot)."""
        return f"{self.plugin}.{self.name}"


def _int(plugin: str, section: str, key: str, value: str) -> int:
    problem = DAEMON[key].check(value)
    if problem:
        raise ConfigError(f"plugin {plugin}: [{section}] {key}: {problem}")
    return int(value)


def daemons_of(plugin: str, merged: Mapping[str, Mapping[str, str]]) -> list[Daemon]:
    """The daemons of `plugin` from its merged, rendered configuration, sorted by name."""
    found = []
    for section in sorted(merged):
        if not section.startswith(DAEMON_PREFIX) or section == DAEMON_PREFIX:
            continue
        keys = {k: v for k, v in DAEMON.items() if v.default is not None}
        values = {k: spec.default or "" for k, spec in keys.items()} | dict(merged[section])
        command = values.get("_cmd_and_args", "").strip()
        if not command:
            raise ConfigError(f"plugin {plugin}: [{section}] missing required key '_cmd_and_args'")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigError(f"plugin {plugin}: [{section}] _cmd_and_args: {exc}") from None
        debug = values["debug"].strip().lower() in _TRUE
        limits = {}
        for key, constant in RLIMITS.items():
            number = _int(plugin, section, key, values[key])
            if number:
                limits[constant] = number
        found.append(
            Daemon(
                plugin=plugin,
                name=section[len(DAEMON_PREFIX) :],
                argv=argv,
                numprocesses=1
                if debug
                else _int(plugin, section, "numprocesses", values["numprocesses"]),
                graceful_timeout=_int(
                    plugin, section, "graceful_timeout", values["graceful_timeout"]
                ),
                max_age=0 if debug else _int(plugin, section, "max_age", values["max_age"]),
                max_age_variance=_int(
                    plugin, section, "max_age_variance", values["max_age_variance"]
                ),
                debug=debug,
                rlimits=limits,
                split_streams=values["log_split_stdout_stderr"].strip().lower() in _TRUE,
                split_workers=values["log_split_multiple_workers"].strip().lower() in _TRUE,
                listen=values.get("listen", "").strip(),
            )
        )
    return found


def log_dir(home: Path, plugin: str) -> Path:
    """The directory of a plugin's log files in the runtime."""
    return home / "log" / plugin


def log_files(
    home: Path, daemon: Daemon, worker: int | str | None = None
) -> tuple[Path, Path | None]:
    """(stdout log, stderr log or None when merged) of `daemon`, of one worker when split."""
    stem = daemon.name
    if daemon.split_workers and worker is not None:
        stem = f"{stem}.{worker}"
    base = log_dir(home, daemon.plugin)
    if daemon.split_streams:
        return base / f"{stem}.stdout.log", base / f"{stem}.stderr.log"
    return base / f"{stem}.log", None
