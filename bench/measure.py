"""Timing and peak memory of commands, run side by side with their baselines."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class BenchError(Exception):
    """Raised when a benchmarked command fails or an input cannot be built."""


@dataclass
class Command:
    """One command line to time; `prepare` runs untimed before each run."""

    label: str
    argv: Sequence[str | Path]
    env: Mapping[str, str]
    cwd: Path | None = None
    prepare: Callable[[], None] | None = None


@dataclass
class Sample:
    """Wall time (s) and peak RSS (MiB, largest process of the tree) of one run."""

    seconds: float
    rss_mib: float


@dataclass
class Row:
    """One line of the results table: ours against a baseline."""

    case: str
    ours: str
    baseline: str
    target: str
    limit: float | None  # the ratio must be at most this; None: informative row
    ours_runs: list[Sample] = field(default_factory=list)
    base_runs: list[Sample] = field(default_factory=list)
    note: str = ""
    met_override: bool | None = None
    ours_peak_rss: float = 0.0
    base_peak_rss: float = 0.0

    @property
    def ours_s(self) -> float:
        return statistics.median(s.seconds for s in self.ours_runs)

    @property
    def base_s(self) -> float:
        return statistics.median(s.seconds for s in self.base_runs)

    @property
    def ratio(self) -> float:
        return self.ours_s / self.base_s if self.base_s else float("inf")

    @property
    def met(self) -> bool | None:
        if self.met_override is not None:
            return self.met_override
        return None if self.limit is None else self.ratio <= self.limit

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready data."""
        return {
            "case": self.case,
            "ours": self.ours,
            "baseline": self.baseline,
            "ours_median_s": round(self.ours_s, 4),
            "baseline_median_s": round(self.base_s, 4),
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "ours_peak_rss_mib": round(self.ours_peak_rss, 1),
            "baseline_peak_rss_mib": round(self.base_peak_rss, 1),
            "ours_runs_s": [round(s.seconds, 4) for s in self.ours_runs],
            "baseline_runs_s": [round(s.seconds, 4) for s in self.base_runs],
            "note": self.note,
        }


def _run(cmd: Command, argv: Sequence[str | Path]) -> tuple[float, resource.struct_rusage]:
    if cmd.prepare is not None:
        cmd.prepare()
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cmd.cwd,
            env=dict(cmd.env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace").strip().splitlines()[-5:]
            raise BenchError(f"{cmd.label} failed (exit {proc.returncode}): " + " | ".join(tail))
    return seconds, usage


def run_once(cmd: Command) -> Sample:
    """Run `cmd` once (after its `prepare`) and time it; RSS from wait4 (see peak_rss)."""
    seconds, usage = _run(cmd, cmd.argv)
    return Sample(seconds, usage.ru_maxrss / 1024)


def peak_rss(cmd: Command) -> float:
    """Peak RSS (MiB) of the largest process of one untimed run of `cmd`.

    A child forked by this (python) process inherits its memory high-water mark; a small
    /usr/bin/time in between reports the command's own, when it is installed.
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    if gnu_time is None:
        return run_once(cmd).rss_mib
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss"
        _run(cmd, [gnu_time, "-f", "%M", "-o", report, *cmd.argv])
        return int(report.read_text().split()[-1]) / 1024


def compare(row: Row, ours: Command, base: Command, reps: int, warmup: bool = False) -> Row:
    """Fill `row` with `reps` runs of ours and of the baseline, alternating A B A B."""
    if warmup:
        run_once(ours)
        run_once(base)
    for _ in range(reps):
        row.ours_runs.append(run_once(ours))
        row.base_runs.append(run_once(base))
    row.ours_peak_rss = peak_rss(ours)
    row.base_peak_rss = peak_rss(base)
    return row


def pythons_started(cmd: Command) -> int | None:
    """How many python interpreters `cmd` executes (strace), or None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "trace"
        traced = Command(
            cmd.label,
            [strace, "-f", "-qq", "-e", "trace=execve", "-o", log, *cmd.argv],
            cmd.env,
            cmd.cwd,
            cmd.prepare,
        )
        try:
            run_once(traced)
        except BenchError:
            return None  # strace not permitted here
        lines = log.read_text(errors="replace").splitlines()
    started = 0
    for line in lines:
        # A successful execve, possibly split by -f into "<unfinished ...>" and "resumed".
        if 'execve("' in line and " = -1 " not in line:
            program = line.split("execve(", 1)[1].split('"')[1]
            started += os.path.basename(program).startswith("python")
    return started
