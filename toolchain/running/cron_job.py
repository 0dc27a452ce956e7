"""One run of a cron job: a lock against overlapping runs, a timeout, and a log file.

Cron starts `plugin_cron NAME --timeout S -- CMD...`; the command runs through
`plugin_wrapper NAME -- CMD...` so that it sees the plugin env, its output is appended to
the plugin's cron log in the runtime's log directory, and a run that outlives its timeout
is terminated with its whole process group. This module stays light: cron runs it often.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

# Exit status of a run killed by its timeout, as timeout(1) does.
TIMED_OUT = 124
# After SIGTERM, a timed-out job gets this long before SIGKILL.
KILL_AFTER = 10.0
# The log file is rotated (one backup kept) when it grows past this size.
MAX_LOG_BYTES = 10 << 20


def log_file(home: Path, plugin: str) -> Path:
    """The file that collects the output of `plugin`'s cron jobs."""
    return home / "log" / plugin / "cron.log"


def lock_file(home: Path, plugin: str, argv: Sequence[str]) -> Path:
    """The lock of one job of `plugin`, named by a hash of its command."""
    digest = hashlib.sha256("\0".join(argv).encode()).hexdigest()[:16]
    return home / "tmp" / "cron-locks" / f"{plugin}-{digest}.lock"


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _open_log(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    return path.open("ab", buffering=0)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_AFTER), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_job(
    home: Path,
    plugin: str,
    command: Sequence[str],
    *,
    wrapper: Path,
    timeout: float,
) -> int:
    """Run `command` of `plugin` once (skipped while a previous run holds the lock).

    Returns the command's exit status, TIMED_OUT when it was killed by the timeout
    (0 means no timeout), and 0 when the run was skipped.
    """
    from filelock import FileLock, Timeout

    lock_path = lock_file(home, plugin, command)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    log = _open_log(log_file(home, plugin))
    shown = " ".join(command)
    with log:
        lock = FileLock(str(lock_path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            log.write(f"{_stamp()} skipped (previous run still running): {shown}\n".encode())
            return 0
        try:
            log.write(f"{_stamp()} start pid {os.getpid()}: {shown}\n".encode())
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(wrapper), plugin, "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                status = proc.wait(timeout=timeout or None)
            except subprocess.TimeoutExpired:
                _terminate(proc)
                status = TIMED_OUT
                log.write(f"{_stamp()} timeout after {timeout:g}s, terminated: {shown}\n".encode())
            except BaseException:
                _terminate(proc)
                raise
            elapsed = time.monotonic() - started
            if status < 0:
                status = 128 - status
            log.write(f"{_stamp()} end exit {status} after {elapsed:.1f}s: {shown}\n".encode())
            return status
        finally:
            lock.release()
