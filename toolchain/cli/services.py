"""`plugins.start`, `plugins.stop`, `plugins.status`, `plugins.reload`: the runtime's daemons."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolchain.cli.command import execute, parser
from toolchain.core.errors import ProcessManagerError, ToolchainError
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
    import time

    from toolchain.core.layout import Runtime
    from toolchain.running import health, metrics, resources, restarts, services
    from toolchain.runtime import registry

    rt = Runtime.current()
    home, installed = rt.home, registry.installed_names(rt)
    for name in args.name:
        if name not in installed:
            raise ProcessManagerError(f"plugin {name} is not installed in {home}")
    names = args.name or installed
    running = supervisor.is_running(home)
    processes = supervisor.processes(home) if running else []
    mine = [p for p in processes if p.plugin in names]
    # Measured before the checks run: a healthcheck_url request is not the workers' load.
    figures = resources.sample(p.pid for p in mine)
    report: list[dict[str, Any]] = []
    idle: list[str] = []
    now, restarted = int(time.time()), restarts.read(home)
    for name in names:
        daemons = [
            {"name": p.name, "state": p.state, "pid": p.pid,
             "age_s": now - p.started if p.state == "RUNNING" else None,
             "restarts": restarted.get(p.spec, 0),
             "resources": (r.as_dict() if (r := figures.get(p.pid)) else None)}
            for p in mine if p.plugin == name
        ]  # fmt: skip
        try:
            env = services.environment(home, name)
            if not running and services.effective_config(home, name, env):
                idle.append(name)
            found = health.check(home, name).as_dict()
        except ToolchainError as exc:  # its env cannot be computed: failing, not the others
            check = {"check": "plugin env", "ok": False, "output": str(exc)}
            found = {"state": "failing", "checks": [check]}
        report.append({"plugin": name, "daemons": daemons, "health": found})
    if args.metrics:
        states = {row["plugin"]: row["health"]["state"] for row in report}
        sys.stdout.write(metrics.render(mine, restarted, figures, states, now))
        # Failing daemons and checks are in the values; a non-zero exit would keep a
        # textfile collector's previous file (`... > f.tmp && mv f.tmp f.prom`).
        return 0
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print_status(report)
    sys.stdout.flush()
    if idle:
        raise ProcessManagerError(
            f"the process manager of {home} is not running; start it with plugins.start "
            f"(daemons of {', '.join(idle)})"
        )
    shown = [p for p in processes if not args.name or p.plugin in args.name]
    _fail_if_any(home, [p for p in shown if p.state in supervisor.FAILING], "not running")
    failing = [r for r in report if r["health"]["state"] == "failing"]
    if failing:
        first = next(c for c in failing[0]["health"]["checks"] if not c["ok"])
        said = " / ".join(first["output"].strip().splitlines()[-2:]) or "no output"
        raise ProcessManagerError(
            f"{len(failing)} plugin(s) failing their health checks: "
            f"{', '.join(r['plugin'] for r in failing)} ({failing[0]['plugin']} "
            f"{first['check']}: {said})"
        )
    return 0


def _print_status(report: list[dict[str, Any]]) -> None:
    for row in report:
        health = row["health"]
        print(f"{row['plugin']}: health {health['state']}")
        for check in health["checks"]:
            last = (check["output"].strip().splitlines() or [""])[-1]
            print(f"  check {check['check']}: {'ok' if check['ok'] else 'FAILING'}: {last}")
        for daemon in row["daemons"]:
            age = f", up {daemon['age_s']}s" if daemon["age_s"] is not None else ""
            again = f", {daemon['restarts']} restart(s)" if daemon["restarts"] else ""
            spec = f"{row['plugin']}:{daemon['name']}"
            used = daemon["resources"]
            load = (
                f", cpu {used['cpu_percent']:.1f}%, rss {used['rss_bytes'] / 2**20:.0f} MiB"
                if used
                else ""
            )
            print(f"  daemon {spec}: {daemon['state']}, pid {daemon['pid']}{age}{again}{load}")


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
    p = parser(
        "plugins.status",
        "Show each plugin's daemons (state, pid, age) and health (its healthcheck and "
        "healthcheck_url checks, run now); exit 1 if a daemon or a check is failing.",
    )
    p.add_argument("name", nargs="*", help="only these plugins")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument(
        "--metrics",
        action="store_true",
        help="Prometheus text format, for node_exporter's textfile collector; exit 0 "
        "whenever it is written, failing daemons and checks being in the values",
    )
    return execute(p, _status, argv, runtime_writer=True)


def reload_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.reload`."""
    p = parser(
        "plugins.reload",
        "Regenerate cron jobs and daemon programs from the current configuration; restart "
        "the daemons whose configuration changed.",
    )
    return execute(p, _reload, argv, runtime_writer=True)
