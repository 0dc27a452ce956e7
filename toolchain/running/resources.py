"""What a daemon worker uses, read from /proc: CPU, memory, threads, open files.

supervisord makes every worker the leader of its own process group, so a worker's figures
are summed over that group: the worker and what it forked (a gunicorn-like master and its
workers). CPU time counts the group's live processes and the children they have reaped,
so it does not go down when a fork exits. The CPU percentage is measured over one short
window for every worker at once (100 is one full core). A process that ends while it is
read is left out; a worker /proc does not show (gone, another user's, no /proc) has no
figures (None).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

PROC = "/proc"
WINDOW = 0.2  # seconds over which cpu_percent is measured


@dataclass(frozen=True)
class Resources:
    """One worker's figures, summed over its process group."""

    cpu_seconds: float  # user + system time since it started, reaped children included
    cpu_percent: float  # over the sampling window; 100 is one full core
    rss_bytes: int  # resident memory; pages shared by forks are counted in each
    threads: int
    open_files: int  # entries of /proc/PID/fd: files, sockets, pipes
    processes: int  # how many processes were counted

    def as_dict(self) -> dict[str, float | int]:
        """The figures as `plugins.status --json` shows them."""
        return asdict(self)


@dataclass(frozen=True)
class ProcStat:
    """What /proc/PID/stat says of one process."""

    pid: int
    state: str  # R, S, D, T (stopped), Z, ...
    group: int  # its process group
    ticks: int  # utime + stime + cutime + cstime, in clock ticks
    threads: int


def _stat(pid: int) -> ProcStat | None:
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as file:
            raw = file.read()
    except OSError:  # gone, or not ours to read
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces and ')':
    # the fields that follow start after the last ')'.
    fields = raw[raw.rfind(b")") + 1 :].split()
    try:
        # fields[0] is the state (field 3 of proc(5)): pgrp is field 5, utime..cstime
        # fields 14 to 17, num_threads field 20.
        ticks = sum(int(f) for f in fields[11:15])
        return ProcStat(pid, fields[0].decode("ascii"), int(fields[2]), ticks, int(fields[17]))
    except (IndexError, ValueError):
        return None


def scan() -> Iterator[ProcStat]:
    """Every process /proc shows (one that ends while it is read is left out)."""
    try:
        names = os.listdir(PROC)
    except OSError:
        return
    for name in names:
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            yield stat


def _groups(leaders: set[int]) -> dict[int, list[ProcStat]]:
    """The processes of each leader's group, the leader among them when /proc shows it."""
    found: dict[int, list[ProcStat]] = {pid: [] for pid in leaders}
    for stat in scan():
        # A worker counts as its own group even if it moved to another one (setpgid).
        key = stat.pid if stat.pid in leaders else stat.group
        if key in found:
            found[key].append(stat)
    return found


def _memory_and_files(pid: int) -> tuple[int, int] | None:
    """(resident pages, open files) of one process; None when it is gone or unreadable."""
    try:
        with open(f"{PROC}/{pid}/statm", "rb") as file:
            resident = int(file.read().split()[1])
        files = len(os.listdir(f"{PROC}/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        return None
    return resident, files


def _figures(
    leader: int, now: list[ProcStat], before: list[ProcStat], elapsed: float
) -> Resources | None:
    counted: list[ProcStat] = []
    pages = files = 0
    for stat in now:
        read = _memory_and_files(stat.pid)
        if read is None:
            continue
        counted.append(stat)
        pages, files = pages + read[0], files + read[1]
    if not any(stat.pid == leader for stat in counted):
        return None
    ticks = sum(stat.ticks for stat in counted)
    # A process that left the group or vanished unreaped takes its time with it: never < 0.
    used = max(0, ticks - sum(stat.ticks for stat in before))
    per_second = os.sysconf("SC_CLK_TCK")
    return Resources(
        cpu_seconds=round(ticks / per_second, 2),
        cpu_percent=round(100 * used / per_second / elapsed, 1) if elapsed > 0 else 0.0,
        rss_bytes=pages * os.sysconf("SC_PAGE_SIZE"),
        threads=sum(stat.threads for stat in counted),
        open_files=files,
        processes=len(counted),
    )


def sample(pids: Iterable[int], window: float = WINDOW) -> dict[int, Resources | None]:
    """The figures of each worker by its pid (its process group's), None where /proc does
    not show the worker; CPU is measured over one `window` of seconds for all of them."""
    leaders = {pid for pid in pids if pid > 0}
    if not leaders:
        return {}
    start = time.monotonic()
    before = _groups(leaders)
    time.sleep(window)
    elapsed = time.monotonic() - start
    after = _groups(leaders)
    return {pid: _figures(pid, after[pid], before[pid], elapsed) for pid in sorted(leaders)}
