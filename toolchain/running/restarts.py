"""How often each daemon worker was restarted after it exited on its own.

supervisord keeps no such count. The runtime's event listener (`max_age`) is told of every
process that starts (PROCESS_STATE_STARTING) and of every group added: a start from
EXITED or BACKOFF (the worker died, or failed to start) adds one to that worker's count in
`run/restarts.json`; a planned start (from STOPPED: `plugins.start`, a max_age restart)
does not, and a group added again (an install or upgrade) starts from zero.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE = "restarts.json"
UNPLANNED = frozenset({"EXITED", "BACKOFF"})


def path(home: Path) -> Path:
    return home / "run" / FILE


def read(home: Path) -> dict[str, int]:
    """{"group:name": restarts} of the runtime's workers."""
    try:
        found = json.loads(path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _write(home: Path, counts: dict[str, int]) -> None:
    target = path(home)
    tmp = target.with_name(f".{FILE}.tmp")
    tmp.write_text(json.dumps(counts, sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)


def record(home: Path, event: str, payload: dict[str, str]) -> None:
    """Count what one supervisord event says of restarts."""
    counts = read(home)
    group = payload.get("groupname", "")
    if event == "PROCESS_GROUP_ADDED":
        kept = {k: v for k, v in counts.items() if k.partition(":")[0] != group}
        if kept != counts:
            _write(home, kept)
    elif event == "PROCESS_STATE_STARTING" and payload.get("from_state") in UNPLANNED:
        spec = f"{group}:{payload.get('processname', '')}"
        counts[spec] = counts.get(spec, 0) + 1
        _write(home, counts)
