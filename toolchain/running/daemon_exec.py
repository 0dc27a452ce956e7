"""Exec wrapper of a daemon worker: apply its resource limits, then exec its command.

supervisord runs `python -m toolchain.running.daemon_exec SPEC.json DAEMON`; the spec, written
with the program files, holds the command (through `plugin_wrapper`, so it runs in the
plugin env), the limits and the `listen` address. A daemon that listens gets the runtime's
socket for it (`sockets`) as fd 3, announced as systemd does: `LISTEN_FDS=1`,
`LISTEN_PID` (this pid: `plugin_wrapper` execs too) and `LISTEN_FDNAMES` (the daemon's
name). The process then becomes the daemon: same pid, so the process manager's signals
and `/proc/PID/limits` apply to it.
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
    return {**entry, "plugin": doc.get("plugin"), "sockets": doc.get("sockets")}


def take_socket(entry: dict[str, Any], name: str) -> None:
    """Put the daemon's listening socket at fd 3 and say so in the environment."""
    from toolchain.running import sockets

    if not entry.get("sockets"):
        raise ExecError("its program file names no socket holder: plugins.reload rewrites it")
    fd = sockets.fetch(Path(str(entry["sockets"])), str(entry["plugin"]), str(entry["listen"]))
    if fd != sockets.FD:
        os.dup2(fd, sockets.FD)  # inheritable, unlike the received fd
        os.close(fd)
    else:
        os.set_inheritable(fd, True)
    os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=name)


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
        if entry.get("listen"):
            take_socket(entry, args[1])
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
