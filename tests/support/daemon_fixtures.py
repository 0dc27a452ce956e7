"""Helpers for tests that run the real process manager: bounded polling, a stand-in wrapper."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from toolchain.running import supervisor

T = TypeVar("T")

# Stands in for plugin_wrapper where the installer is not under test.
FAKE_WRAPPER = """#!/bin/sh
name="$1"; shift; shift
export PLUGINS_CURRENT_PLUGIN_NAME="$name"
exec "$@"
"""

# A daemon that reports its pid, then waits for SIGTERM. One write per line: workers
# share a log file, and a line written in pieces could interleave with another's.
SERVICE = """import os, signal, sys, time
name = os.environ.get("PLUGINS_CURRENT_PLUGIN_NAME")
os.write(1, f"started {os.getpid()} {name}\\n".encode())
os.write(2, f"to stderr {os.getpid()}\\n".encode())
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(60)
"""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll `probe` until it returns a true value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def running_pids(home: Path, group: str) -> dict[str, int] | None:
    """{process name: pid} of `group` when all its processes run, else None."""
    procs = [p for p in supervisor.processes(home) if p.plugin == group]
    if procs and all(p.state == "RUNNING" and p.pid for p in procs):
        return {p.name: p.pid for p in procs}
    return None


def limits_of(pid: int) -> dict[str, str]:
    """Soft limits from /proc/PID/limits, by name ('Max open files': '123')."""
    out = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:47].strip()
        out[name] = soft
    return out
