"""Exec wrapper of a daemon worker: apply its resource limits, then exec its command.

supervisord runs `python -m toolchain.running.daemon_exec SPEC.json DAEMON`; the spec, written
with the program files, holds the command (through `plugin_wrapper`, so it runs in the
plugin env) and the limits. The process then becomes the daemon: same pid, so the
process manager's signals and `/proc/PID/limits` apply to it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

from toolchain.core.errors import ProcessManagerError as ExecError


def load(spec: Path, daemon: str) -> dict[str, Any]:
    """The entry of `daemon` in a plugin's program spec."""
    try:
        doc = json.loads(spec.read_text(encoding="utf-8"))
        entry = doc["daemons"][daemon]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExecError(f"{spec}: no usable entry for daemon {daemon!r}: {exc}") from None
    if not isinstance(entry, dict):
        raise ExecError(f"{spec}: entry of daemon {daemon!r} is not an object")
    return entry


def apply_limits(limits: dict[str, int]) -> None:
    """Set soft and hard limits (`{"RLIMIT_AS": bytes, ...}`) on this process."""
    for name, value in sorted(limits.items()):
        which = getattr(resource, name, None)
        if not isinstance(which, int):
            raise ExecError(f"unknown resource limit {name}")
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and value > hard:
            raise ExecError(f"{name.lower()}={value} is above the hard limit {hard}")
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError) as exc:
            raise ExecError(f"cannot set {name.lower()}={value}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Apply the limits of one daemon and exec its command; return 1 on failure."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m toolchain.running.daemon_exec SPEC.json DAEMON", file=sys.stderr)
        return 2
    try:
        entry = load(Path(args[0]), args[1])
        apply_limits({str(k): int(v) for k, v in entry.get("rlimits", {}).items()})
        command = [str(c) for c in entry["exec"]]
    except (ExecError, KeyError, TypeError, ValueError) as exc:
        print(f"ERROR: daemon {args[1]}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"ERROR: daemon {args[1]}: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
