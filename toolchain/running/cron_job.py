"""One run of a cron job: a lock against overlapping runs, a timeout, and a log file.

Cron starts `plugin_cron NAME --timeout S [OPTIONS] -- CMD...`; the command runs through
`plugin_wrapper NAME -- CMD...` so that it sees the plugin env, its output is appended to
the plugin's cron log in the runtime's log directory, and a run that outlives its timeout
is terminated with its whole process group. The options (MetWork's cronwrap) lower its
CPU and I/O priority (`--nice`, `--ionice`, `--low`), spread a fleet's runs
(`--random-sleep`) and drop the lock (`--no-lock`); a crontab line sets them as a prefix
of its command (`crontab.split_prefix`). This module stays light: cron runs it often.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

# Exit status of a run killed by its timeout, as timeout(1) does.
TIMED_OUT = 124
# After SIGTERM, a timed-out job gets this long before SIGKILL.
KILL_AFTER = 10.0
# The log file is rotated (one backup kept) when it grows past this size.
MAX_LOG_BYTES = 10 << 20
# ionice's classes, by name and number; only best-effort and realtime take a level.
IO_CLASSES = {"none": 0, "realtime": 1, "best-effort": 2, "idle": 3}
LOW_NICE = 19  # --low: the lowest CPU priority, and the idle I/O class


def nice_value(text: str) -> int:
    """`--nice N`: a niceness from -20 (first) to 19 (last)."""
    try:
        value = int(text)
    except ValueError:
        value = 99
    if not -20 <= value <= 19:
        raise ValueError(f"--nice {text}: give a niceness from -20 to 19")
    return value


def ionice_value(text: str) -> tuple[int, int | None]:
    """`--ionice CLASS[:LEVEL]`: (class number, level or None), as ionice(1) takes them."""
    name, _sep, level = text.partition(":")
    number = int(name) if name in ("0", "1", "2", "3") else IO_CLASSES.get(name)
    if number is None or number not in IO_CLASSES.values():
        raise ValueError(
            f"--ionice {text}: the class is idle, best-effort, realtime or none (or 0-3)"
        )
    if not level:
        return number, None
    if number not in (1, 2) or len(level) != 1 or level not in "01234567":
        raise ValueError(
            f"--ionice {text}: only best-effort and realtime take a level, from 0 to 7"
        )
    return number, int(level)


def canonical(value: object) -> str:
    """A checked option value written back as plugin_cron's parser reads it again: `-1_0`
    or `-0e0` pass int() and float() but are not numbers to argparse."""
    if isinstance(value, tuple):
        number, level = value
        name = next(k for k, v in IO_CLASSES.items() if v == number)
        return name if level is None else f"{name}:{level}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def seconds_value(text: str) -> float:
    """A number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(f"{text!r} is not a number of seconds (0 or more)")
    return value


# plugin_cron's options, defined once for its command line and a crontab line's prefix:
# flag -> (the check of its value, None for a flag; metavar; help).
OPTIONS: dict[str, tuple[Callable[[str], object] | None, str, str]] = {
    "--timeout": (
        seconds_value,
        "S",
        "seconds before the job is terminated (default: 0, no limit)",
    ),
    "--nice": (
        nice_value,
        "N",
        "run the job at niceness N (-20 to 19; below the current one needs root)",
    ),
    "--ionice": (
        ionice_value,
        "CLASS[:LEVEL]",
        "run the job in this I/O class: idle, best-effort[:0-7], realtime[:0-7] (root only), none",
    ),
    "--low": (
        None,
        "",
        f"lowest priority: nice {LOW_NICE} and the idle I/O class (--nice and --ionice win "
        "over it)",
    ),
    "--random-sleep": (
        seconds_value,
        "SECONDS",
        "first sleep a random time up to SECONDS: spreads the runs of a fleet that shares a "
        "schedule",
    ),
    "--no-lock": (
        None,
        "",
        "let runs overlap (by default a run is skipped while the previous one runs)",
    ),
}


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


def lower_priority(nice: int | None, ionice: tuple[int, int | None] | None) -> None:
    """Set this process's niceness and I/O class, which the job inherits (ionice(1) sets
    the class: the system call has no wrapper in Python)."""
    from toolchain.core.errors import CronError

    if nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:
            now = os.getpriority(os.PRIO_PROCESS, 0)
            raise CronError(
                f"--nice {nice}: {exc.strerror}; below the current niceness ({now}) only "
                "root may go"
            ) from None
    if ionice is not None:
        number, level = ionice
        argv = ["ionice", "-c", str(number), *(["-n", str(level)] if level is not None else [])]
        shown = canonical(ionice)
        try:
            proc = subprocess.run(
                [*argv, "-p", str(os.getpid())], capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise CronError(
                f"--ionice {shown}: cannot run ionice ({exc.strerror}); install util-linux"
            ) from None
        if proc.returncode:
            said = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise CronError(f"--ionice {shown}: ionice failed: {said}")


def _random_sleep(seconds: float) -> float:
    """Sleep a random time up to `seconds` (os.urandom: `random` costs an import)."""
    if seconds <= 0:
        return 0.0
    slept = int.from_bytes(os.urandom(7), "big") / (1 << 56) * seconds
    time.sleep(slept)
    return slept


def run_job(
    home: Path,
    plugin: str,
    command: Sequence[str],
    *,
    wrapper: Path,
    timeout: float,
    nice: int | None = None,
    ionice: tuple[int, int | None] | None = None,
    random_sleep: float = 0.0,
    lock: bool = True,
) -> int:
    """Run `command` of `plugin` once (skipped while a previous run holds the lock).

    Returns the command's exit status, TIMED_OUT when it was killed by the timeout
    (0 means no timeout), and 0 when the run was skipped. `nice` and `ionice` lower the
    job's priority; `random_sleep` waits up to that many seconds first; without `lock`,
    runs may overlap.
    """
    from filelock import FileLock, Timeout

    from toolchain.core.errors import CronError

    lock_path = lock_file(home, plugin, command)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    log = _open_log(log_file(home, plugin))
    shown = " ".join(command)
    with log:
        try:
            lower_priority(nice, ionice)
        except CronError as exc:
            log.write(f"{_stamp()} not started: {exc}: {shown}\n".encode())
            raise
        slept = _random_sleep(random_sleep)
        held = FileLock(str(lock_path), timeout=0)
        try:
            if lock:
                held.acquire()
        except Timeout:
            log.write(f"{_stamp()} skipped (previous run still running): {shown}\n".encode())
            return 0
        try:
            after = f" after a random sleep of {slept:.1f}s" if random_sleep else ""
            log.write(f"{_stamp()} start pid {os.getpid()}{after}: {shown}\n".encode())
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
            if held.is_locked:
                held.release()
