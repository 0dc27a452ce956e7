"""Replacing a running plugin's daemons without a gap: the new workers start first.

A plugin's process group runs in one of two slots (`NAME`, `NAME@b`). When every daemon
of the running version and of the new one listens on a socket the runtime holds
(`listen`, `sockets`), `swap` writes the new version's programs in the other slot and
starts them while the old workers serve, from the same sockets. Once no new worker is
still starting, the plugin's checks run (`health`) until they pass or the longest check
timeout has gone by. Each `healthcheck_url` request goes out with the old workers paused
(SIGSTOP to their process groups, SIGCONT after), so that only a new worker can answer
it; between checks the new workers are the paused ones, so that a version failing its
checks serves next to nothing meanwhile. A guardian process wakes every paused worker if
this one dies, even by SIGKILL. Healthy: the old workers get SIGTERM and finish what they
serve (`graceful_timeout`). Not healthy: the new workers are stopped, the previous program
file comes back, and the old workers, which never stopped, keep serving.

Daemons that do not all listen through the runtime (they bind a port themselves, or run
once per host: a queue consumer, a scheduler) are stopped, then started, as before; the
health gate follows all the same. After a crash half-way, the next `swap` (recovery
finalizes the plugin again) keeps the group that was serving before, wakes any paused
worker, and swaps again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from toolchain.core import settings
from toolchain.core.errors import ToolchainError
from toolchain.running import health, programs, resources, supervisor

log = logging.getLogger(__name__)
_POLL = 0.2
# The guardian: waits for its stdin to close (this process ended, however), then wakes
# the process groups it was given.
_GUARDIAN = """import os, signal, sys
sys.stdin.buffer.read()
for pgid in sys.argv[1:]:
    try:
        os.killpg(int(pgid), signal.SIGCONT)
    except OSError:
        pass
"""


def groups_of(home: Path, plugin: str) -> dict[str, list[supervisor.Process]]:
    """The plugin's process groups known to supervisord, with their processes."""
    found: dict[str, list[supervisor.Process]] = {}
    for process in supervisor.processes(home):
        if process.plugin == plugin:
            found.setdefault(process.group, []).append(process)
    return found


def _stopped(pgids: set[int]) -> bool:
    """Whether every process of these process groups is stopped (state T)."""
    return all(p.state in ("T", "t", "Z", "X") for p in resources.scan() if p.group in pgids)


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


@contextlib.contextmanager
def guarded(pgids: set[int]) -> Iterator[None]:
    """A block that may pause these process groups: they are woken when it ends, by a
    guardian process if this one is killed, and SIGTERM or SIGHUP end it like Ctrl-C."""
    if not pgids:
        yield
        return
    guardian = subprocess.Popen(
        [sys.executable, "-c", _GUARDIAN, *map(str, sorted(pgids))],
        stdin=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _signal_groups(pgids, signal.SIGCONT)
        assert guardian.stdin is not None
        guardian.stdin.close()
        guardian.wait(10)


@contextlib.contextmanager
def _probing(old: set[int]) -> Iterator[None]:
    """One `healthcheck_url` request: the old workers paused, so a new one answers."""
    with paused(old):
        settings.crash_at("hotswap-checking")
        yield


def gate_timeout(home: Path, plugin: str) -> float:
    """How long a new version has to become healthy: the longest `healthcheck_timeout` of
    its daemons (0, one try, for a plugin without daemons: nothing is starting)."""
    from toolchain.running import services

    env = services.environment(home, plugin)
    timeouts = [0.0]
    for keys in services.effective_config(home, plugin, env).values():
        timeouts.append(float(keys.get("healthcheck_timeout") or 10))
    return max(timeouts)


def gate(home: Path, plugin: str, groups: list[str], old: set[int]) -> health.Health:
    """Wait for `groups`' workers to be up and the plugin's checks to pass (or time out).

    With `old` workers serving, the new ones are held (SIGSTOP) between checks and the old
    ones during each `healthcheck_url` request.
    """
    failing = supervisor.settle(home, groups, by_group=True) if groups else []
    if failing:
        first = failing[0]
        said = [f"{first.spec}: {first.state}", *supervisor.log_tail(home, first)]
        return health.Health([health.Check(first.spec, False, "\n".join(said))])
    new = set()
    if old:  # the new workers, held between checks
        new = {p.pid for p in supervisor.processes(home) if p.group in groups and p.pid}
    deadline = time.monotonic() + gate_timeout(home, plugin)
    with guarded(old | new):
        while True:
            _signal_groups(new, signal.SIGCONT)
            found = health.check(home, plugin, around_urls=lambda: _probing(old))
            _signal_groups(new, signal.SIGSTOP)
            if found.state != "failing" or time.monotonic() > deadline:
                return found
            time.sleep(_POLL)


_call = supervisor.call


def _drop_group(home: Path, proxy: Any, group: str) -> None:
    """Stop a group gracefully, forget it, and remove what its workers read."""
    _call(proxy, "stopProcessGroup", group, True)
    _call(proxy, "removeProcessGroup", group)
    programs.remove_spec(home, group)


def _keep_one(home: Path, proxy: Any, present: dict[str, list[supervisor.Process]]) -> str:
    """The one group to swap from. Two are there after an interrupted swap: the one that
    served before it (running, and not the one NAME.conf names) stays, else the named one."""
    if len(present) == 1:
        return next(iter(present))
    named = programs.configured_group(home, programs.plugin_of(next(iter(present))))
    before = [
        group
        for group in sorted(present)
        if group != named and any(p.state == "RUNNING" for p in present[group])
    ]
    keep = before[0] if before else (named if named in present else sorted(present)[0])
    for group in sorted(present):
        if group != keep:
            _drop_group(home, proxy, group)
            del present[group]
    return keep


def listens(home: Path, new: programs.PluginPrograms, groups: Iterable[str]) -> bool:
    """Whether every daemon of `new` and of the running `groups` listens through the
    runtime's sockets: only then may two versions run side by side."""
    if not all(d.listen for d in new.daemons):
        return False
    for group in groups:
        try:
            spec = programs.config_dir(home) / f"{group}.json"
            daemons = json.loads(spec.read_text(encoding="utf-8"))["daemons"].values()
        except (OSError, ValueError, KeyError, AttributeError):
            return False
        if not all(isinstance(d, dict) and d.get("listen") for d in daemons):
            return False
    return True


def swap(
    home: Path, new: programs.PluginPrograms, *, gate_it: bool = True, revertible: bool = True
) -> health.Health:
    """Start `new` beside the plugin's running workers, then keep one version: the new one
    when healthy (returned health not failing), else the old one (failing health); without
    `revertible` (nothing to go back to), the new one whatever its health."""
    plugin = new.plugin
    conf = programs.config_dir(home) / f"{plugin}.conf"
    present = groups_of(home, plugin)
    # A swap killed half-way may have left workers paused.
    _signal_groups({p.pid for procs in present.values() for p in procs if p.pid}, signal.SIGCONT)
    with supervisor.client(home) as proxy:
        old = _keep_one(home, proxy, present)
        previous = conf.read_text(encoding="utf-8") if conf.is_file() else None
        group = programs.other_slot(old)
        programs.write_plugin(home, dataclasses.replace(new, group=group))
        _call(proxy, "reloadConfig")
        _call(proxy, "addProcessGroup", group)
    settings.crash_at("hotswap-started")
    pause = {p.pid for p in present[old] if p.pid and p.state == "RUNNING"}
    try:
        found = gate(home, plugin, [group], pause) if gate_it else health.Health()
    except ToolchainError as exc:
        found = health.Health([health.Check("daemons", False, str(exc))])
    with supervisor.client(home) as proxy:
        if found.state == "failing" and revertible:
            _drop_group(home, proxy, group)
            if previous is not None:
                programs.write_if_changed(conf, previous)
            _call(proxy, "reloadConfig")
        else:
            _drop_group(home, proxy, old)
    return found


def apply(
    home: Path, name: str, *, gate_it: bool = True, restart: bool = True, revertible: bool = True
) -> health.Health:
    """Cron jobs and daemons follow installed plugin `name` (new, upgraded, rolled back);
    return its health once they do (not `failing` when nothing was checked).

    Running workers are swapped (`swap`) when they all listen through the runtime, other
    daemons (re)started (`services`); with `gate_it`, the checks run until they pass or
    time out. Without `restart`, daemons whose program files stay the same keep running
    (a version swapped back after a failed check). A plugin whose daemons cannot run now
    (no process manager) is not checked.
    """
    from toolchain.running import services

    new = services.programs_of(home, name)
    manager = supervisor.is_running(home)
    running = groups_of(home, name) if manager and new.daemons and not new.watch else {}
    up = any(p.state in ("RUNNING", "STARTING") for procs in running.values() for p in procs)
    if up and listens(home, new, running):
        found = health.Health()
        if restart or not programs.is_written(home, new):
            found = swap(home, new, gate_it=gate_it, revertible=revertible)
        try:
            services.regenerate_crontab(home)
        except ToolchainError as exc:
            log.warning("plugin %s: cron jobs not updated: %s", name, exc)
        return found
    try:
        services.after_install(name, home, restart=restart)
    except ToolchainError as exc:  # the checks below say whether it matters
        log.warning("plugin %s: cron jobs and daemons not updated: %s", name, exc)
    if not gate_it or (new.daemons and not manager):
        return health.Health()
    groups = [new.group_name] if manager and new.daemons else []
    return gate(home, name, groups, set())
