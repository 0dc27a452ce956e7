"""Replacing a running plugin's daemons without a gap: the new workers start first.

A plugin's process group runs in one of two slots (`NAME`, `NAME@b`). `swap` writes the
new version's programs in the other slot and starts them while the old workers serve;
both accept from the same listening sockets, which the runtime holds (`sockets`). Once no
new worker is still starting, the plugin's checks run (`health`) until they pass or the
longest check timeout has gone by. Each check runs with the old workers paused (SIGSTOP
to their process groups for the check's length, SIGCONT after), so that only a new
worker can answer a `healthcheck_url`; between checks the new workers are the paused
ones, so that a version failing its checks serves next to nothing meanwhile. Healthy: the
old workers get SIGTERM and finish what they serve (`graceful_timeout`). Not healthy: the
new workers are stopped, the previous program file comes back, and the old workers,
which never stopped, keep serving.

After a crash half-way, the next `swap` (recovery finalizes the plugin again) first
removes the group NAME.conf does not name, wakes any paused worker, then swaps as usual.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from toolchain.core import settings
from toolchain.core.layout import Runtime
from toolchain.running import health, programs, supervisor

_POLL = 0.2


def groups_of(home: Path, plugin: str) -> dict[str, list[supervisor.Process]]:
    """The plugin's process groups known to supervisord, with their processes."""
    found: dict[str, list[supervisor.Process]] = {}
    for process in supervisor.processes(home):
        if process.plugin == plugin:
            found.setdefault(process.group, []).append(process)
    return found


def is_running(home: Path, plugin: str) -> bool:
    """Whether a worker of `plugin` is up (a swap then keeps the service up)."""
    return any(
        p.state in ("RUNNING", "STARTING")
        for procs in groups_of(home, plugin).values()
        for p in procs
    )


def _stopped(pgids: set[int]) -> bool:
    """Whether every process of these process groups is stopped (state T)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) in pgids and fields[0] not in ("T", "t", "Z", "X"):
            return False
    return True


def _signal_groups(pgids: Iterable[int], signum: int) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)


@contextlib.contextmanager
def paused(pgids: set[int]) -> Iterator[None]:
    """These process groups stopped for the block (they accept nothing meanwhile)."""
    try:
        _signal_groups(pgids, signal.SIGSTOP)
        deadline = time.monotonic() + 2
        while not _stopped(pgids) and time.monotonic() < deadline:
            time.sleep(0.005)
        yield
    finally:
        _signal_groups(pgids, signal.SIGCONT)


def gate_timeout(home: Path, plugin: str) -> float:
    """How long a new version has to become healthy: its longest check timeout."""
    from toolchain.running import services

    env = services.environment(home, plugin)
    script = (Runtime(home).plugin(plugin) / health.HEALTHCHECK).is_file()
    timeouts = [settings.healthcheck_timeout()] if script else [0.0]
    for keys in services.effective_config(home, plugin, env).values():
        if keys.get("healthcheck_url", "").strip():
            timeouts.append(float(keys.get("healthcheck_timeout") or 10))
    return max(timeouts)


def gate(home: Path, plugin: str, groups: list[str], old: set[int]) -> health.Health:
    """Wait for `groups`' workers to be up and the plugin's checks to pass (or time out).

    With `old` workers serving, the new ones are held (SIGSTOP) between checks and the old
    ones during each: a check reaches a new worker only, and a new version that fails its
    checks serves little more than them.
    """
    failing = supervisor.settle(home, groups, by_group=True) if groups else []
    if failing:
        first = failing[0]
        said = [f"{first.spec}: {first.state}", *supervisor.log_tail(home, first)]
        return health.Health([health.Check(first.spec, False, "\n".join(said))])
    new = (
        {p.pid for p in supervisor.processes(home) if p.group in groups and p.pid} if old else set()
    )
    deadline = time.monotonic() + gate_timeout(home, plugin)
    try:
        while True:
            with paused(old):
                _signal_groups(new, signal.SIGCONT)
                try:
                    settings.crash_at("hotswap-checking")  # old workers paused
                    found = health.check(home, plugin)
                finally:
                    _signal_groups(new, signal.SIGSTOP)
            if found.state != "failing" or time.monotonic() > deadline:
                return found
            time.sleep(_POLL)
    finally:
        _signal_groups(new, signal.SIGCONT)


_call = supervisor.call


def _drop_group(home: Path, proxy: Any, group: str) -> None:
    """Stop a group gracefully, forget it, and remove what its workers read."""
    _call(proxy, "stopProcessGroup", group, True)
    _call(proxy, "removeProcessGroup", group)
    programs.remove_spec(home, group)


def swap(home: Path, new: programs.PluginPrograms, *, gate_it: bool = True) -> health.Health:
    """Start `new` beside the plugin's running workers, then keep one version: the new one
    when healthy (returned health not failing), else the old one (failing health)."""
    plugin = new.plugin
    conf = programs.config_dir(home) / f"{plugin}.conf"
    present = groups_of(home, plugin)
    named = programs.configured_group(home, plugin)
    # A swap killed half-way may have left workers paused.
    _signal_groups({p.pid for procs in present.values() for p in procs if p.pid}, signal.SIGCONT)
    with supervisor.client(home) as proxy:
        if len(present) > 1:  # a swap was interrupted: keep the group NAME.conf names
            for group in sorted(present):
                if group != named:
                    _drop_group(home, proxy, group)
                    del present[group]
        (old,) = present
        previous = conf.read_text(encoding="utf-8") if conf.is_file() else None
        group = programs.other_slot(old)
        programs.write_plugin(home, dataclasses.replace(new, group=group))
        _call(proxy, "reloadConfig")
        _call(proxy, "addProcessGroup", group)
    settings.crash_at("hotswap-started")
    pause = {p.pid for p in present[old] if p.pid and p.state == "RUNNING"}
    found = gate(home, plugin, [group], pause) if gate_it else health.Health()
    with supervisor.client(home) as proxy:
        if found.state == "failing":
            _drop_group(home, proxy, group)
            if previous is not None:
                programs.write_if_changed(conf, previous)
            _call(proxy, "reloadConfig")
        else:
            _drop_group(home, proxy, old)
    return found


def apply(home: Path, name: str, *, gate_it: bool = True, restart: bool = True) -> health.Health:
    """Cron jobs and daemons follow installed plugin `name` (new, upgraded, rolled back);
    return its health once they do (not `failing` when nothing was checked).

    Running workers are swapped (`swap`), other daemons (re)started (`services`); with
    `gate_it`, the checks run until they pass or time out. Without `restart`, daemons whose
    program files stay the same keep running (a version swapped back after a failed
    check). A plugin whose daemons cannot run now (no process manager) is not checked.
    """
    from toolchain.running import services

    new = services.programs_of(home, name)
    manager = supervisor.is_running(home)
    if manager and new.daemons and not new.watch and is_running(home, name):
        if restart or not programs.is_written(home, new):
            found = swap(home, new, gate_it=gate_it)
        else:
            found = health.Health()
        services.regenerate_crontab(home)
        return found
    services.after_install(name, home, restart=restart)
    if not gate_it or (new.daemons and not manager):
        return health.Health()
    groups = [new.group_name] if manager and new.daemons else []
    return gate(home, name, groups, set())
