"""supervisord event listener: gracefully restart daemon workers older than their max_age.

Runs as the runtime's `plugin_max_age` event listener, woken by TICK_5 events; it also
hands the events of starting processes and added groups to `restarts`, which counts
restarts. The
`max_age` of each program comes from the plugin program specs (`supervisor.d/*.json`).
At most one worker per program is restarted per tick, so that a program with several
workers started together never loses all of them at once.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any


def max_ages(spec_dir: Path) -> dict[str, tuple[int, int]]:
    """{program: (max_age, max_age_variance)} for every daemon with a max_age."""
    ages: dict[str, tuple[int, int]] = {}
    for spec in sorted(spec_dir.glob("*.json")):
        try:
            doc = json.loads(spec.read_text(encoding="utf-8"))
            for entry in doc["daemons"].values():
                if int(entry.get("max_age", 0)) > 0:
                    variance = int(entry.get("max_age_variance", 0))
                    ages[str(entry["program"])] = (int(entry["max_age"]), variance)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being rewritten or removed: the next tick sees it
    return ages


def spread(info: dict[str, Any], variance: int) -> int:
    """The extra seconds, 0 to `variance`, one worker's life gets: drawn from its name and
    start time, so it stays the same at every tick of that life and differs between
    workers started together."""
    if variance <= 0:
        return 0
    seed = f"{info['group']}:{info['name']}:{info['start']}".encode()
    return int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % (variance + 1)


def too_old(
    infos: list[dict[str, Any]], ages: dict[str, tuple[int, int]]
) -> list[tuple[str, int, int]]:
    """(group:name, age, its max_age) of the oldest overdue running worker of each program;
    a worker's max_age is the program's plus its `spread`."""
    chosen: dict[str, tuple[str, int, int]] = {}
    for info in infos:
        program = str(info["name"]).rsplit(".", 1)[0]
        limit, variance = ages.get(program, (0, 0))
        if not limit or info["statename"] != "RUNNING":
            continue
        limit += spread(info, variance)
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
