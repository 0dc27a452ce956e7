"""`plugins.start`, `plugins.stop`, `plugins.status`, `plugins.reload`: the runtime's daemons."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from toolchain.cli.command import execute, parser
from toolchain.core.errors import ProcessManagerError
from toolchain.running import supervisor


def _start(args: argparse.Namespace) -> int:
    from toolchain.core.layout import Runtime
    from toolchain.installer import lock
    from toolchain.running import services

    rt = Runtime.current()
    home = rt.home
    with lock.locked(rt):  # no install or uninstall changes the programs meanwhile
        started = services.start(home)
    print(f"{'started' if started else 'already running, configuration applied'}: {home}")
    _fail_if_any(home, supervisor.settle(home), "could not start")
    return 0


def _fail_if_any(home: Path, failing: list[supervisor.Process], what: str) -> None:
    """Print the last lines of each failing daemon, then fail in one line naming them."""
    if not failing:
        return
    for process in failing:
        for line in supervisor.log_tail(home, process):
            print(f"  {process.spec}: {line}", file=sys.stderr)
    named = ", ".join(f"{p.spec} ({p.state})" for p in failing)
    raise ProcessManagerError(
        f"{len(failing)} daemon(s) {what}: {named}; see their logs in {home / 'log'}"
    )


def _stop(args: argparse.Namespace) -> int:
    from toolchain.core.layout import runtime_home
    from toolchain.running import services

    home = runtime_home()
    print(f"{'stopped' if services.stop(home) else 'not running'}: {home}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from toolchain.core.layout import runtime_home

    home = runtime_home()
    if not supervisor.is_running(home):
        raise ProcessManagerError(
            f"the process manager of {home} is not running; start it with plugins.start"
        )
    found = [p for p in supervisor.processes(home) if not args.name or p.group in args.name]
    if args.json:
        doc = [{"group": p.group, "name": p.name, "state": p.state, "pid": p.pid} for p in found]
        print(json.dumps(doc, indent=1))
    else:
        width = max((len(p.spec) for p in found), default=0)
        for p in found:
            print(f"{p.spec:<{width}}  {p.state:<8}  {p.description}")
    sys.stdout.flush()
    _fail_if_any(home, [p for p in found if p.state in supervisor.FAILING], "not running")
    return 0


def _reload(args: argparse.Namespace) -> int:
    from toolchain.core.layout import Runtime
    from toolchain.installer import lock
    from toolchain.running import services

    rt = Runtime.current()
    home = rt.home
    with lock.locked(rt):
        services.reload(home)
        from toolchain.installer import hooks
        from toolchain.runtime import registry

        for name in registry.installed_names(rt):
            hooks.warn_unknown_keys(rt, name)
    print(f"reloaded: {home}")
    return 0


def start_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.start`."""
    p = parser(
        "plugins.start",
        "Start the runtime's process manager and every plugin's daemons; when it runs "
        "already, apply configuration changes.",
    )
    return execute(p, _start, argv, runtime_writer=True)


def stop_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.stop`."""
    p = parser("plugins.stop", "Stop every plugin's daemons gracefully, then the process manager.")
    return execute(p, _stop, argv, runtime_writer=True)


def status_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.status`."""
    p = parser("plugins.status", "Show the state of the plugins' daemons.")
    p.add_argument("name", nargs="*", help="only these plugins")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return execute(p, _status, argv, runtime_writer=True)


def reload_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.reload`."""
    p = parser(
        "plugins.reload",
        "Regenerate cron jobs and daemon programs from the current configuration; restart "
        "the daemons whose configuration changed.",
    )
    return execute(p, _reload, argv, runtime_writer=True)
