"""supervisord event listener: gracefully restart daemon workers older than their max_age.

Runs as the runtime's `plugin_max_age` event listener, woken by TICK_5 events; it also
hands the events of starting processes and added groups to `restarts`, which counts
restarts. The
`max_age` of each program comes from the plugin program specs (`supervisor.d/*.json`).
At most one worker per program is restarted per tick, so that a program with several
workers started together never loses all of them at once.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def max_ages(spec_dir: Path) -> dict[str, int]:
    """{program: max_age} for every daemon with a max_age, from the program specs."""
    ages: dict[str, int] = {}
    for spec in sorted(spec_dir.glob("*.json")):
        try:
            doc = json.loads(spec.read_text(encoding="utf-8"))
            for entry in doc["daemons"].values():
                if int(entry.get("max_age", 0)) > 0:
                    ages[str(entry["program"])] = int(entry["max_age"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being rewritten or removed: the next tick sees it
    return ages


def too_old(infos: list[dict[str, Any]], ages: dict[str, int]) -> list[tuple[str, int, int]]:
    """(group:name, age, max_age) of the oldest overdue running worker of each program."""
    chosen: dict[str, tuple[str, int, int]] = {}
    for info in infos:
        program = str(info["name"]).rsplit(".", 1)[0]
        limit = ages.get(program)
        if not limit or info["statename"] != "RUNNING":
            continue
        age = int(info["now"]) - int(info["start"])
        if age >= limit and (program not in chosen or age > chosen[program][1]):
            chosen[program] = (f"{info['group']}:{info['name']}", age, limit)
    return [chosen[p] for p in sorted(chosen)]


def tick(rpc: Any, spec_dir: Path) -> None:
    """Restart the workers that passed their max_age."""
    ages = max_ages(spec_dir)
    if not ages:
        return
    for spec, age, limit in too_old(rpc.supervisor.getAllProcessInfo(), ages):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        print(f"{stamp} restarting {spec}: age {age}s >= max_age {limit}s", file=sys.stderr)
        rpc.supervisor.stopProcess(spec, True)
        rpc.supervisor.startProcess(spec, False)


def main(argv: list[str] | None = None) -> int:
    """The event listener loop."""
    import os
    import xmlrpc.client

    from supervisor import childutils

    from toolchain.core import settings
    from toolchain.running import restarts

    args = sys.argv[1:] if argv is None else argv
    spec_dir = Path(args[0])
    home = Path(settings.runtime_home())
    rpc = childutils.getRPCInterface(os.environ)
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        event = str(headers.get("eventname", ""))
        if event in ("PROCESS_STATE_STARTING", "PROCESS_GROUP_ADDED"):
            try:
                restarts.record(home, event, childutils.get_headers(payload.split("\n", 1)[0]))
            except OSError as exc:
                print(f"restart count not kept: {exc}", file=sys.stderr)
        elif event.startswith("TICK"):
            try:
                tick(rpc, spec_dir)
            except (OSError, xmlrpc.client.Error) as exc:
                print(f"max_age check failed: {exc}", file=sys.stderr)
        sys.stderr.flush()
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
