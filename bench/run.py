"""Benchmark suite: the toolchain's commands against the tools users would pick instead.

    python bench/run.py [--quick] [--reps N] [--only CASE ...]

Builds its inputs once under bench/.cache/ (network needed the first time), runs each
case and its baseline alternately, prints medians and ratios, and writes
bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases
import fleet
import inputs
import swap
from measure import BenchError, Row

RESULTS = inputs.HERE / "results" / "latest.json"
CASES = ("idle", "release", "install", "pack", "many", "startup", "swap", "fleet")


def _uv_available() -> bool:
    try:
        from toolchain.localenv import backend
    except ImportError:
        return False
    return backend.uv_executable() is not None


def _re2_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("re2") is not None


def run(only: Sequence[str], reps: int, quick: bool) -> list[Row]:
    """Build the inputs, then run the chosen cases in order."""
    wheels = inputs.wheel_cache()
    baselines = inputs.baseline_venv() if "release" in only else Path()
    work = inputs.CACHE / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ctx = cases.Context(reps, quick, work, wheels, baselines, _uv_available())
    rows: list[Row] = []
    installer = cases.installer_available()

    def step(name: str, body: Callable[[], list[Row]]) -> None:
        start = time.perf_counter()
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        rows.extend(body())
        print(f"   {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    if "idle" in only:
        step("make with nothing changed", lambda: cases.nothing_changed(ctx))
    if "release" in only or "install" in only:
        release_rows, art = cases.cold_release(ctx, measure="release" in only)
        rows.extend(release_rows)
        if "install" in only and installer:
            req = art.parent / "python3_virtualenv_sources" / "requirements3.txt"
            step("plugins.install", lambda: cases.install(ctx, art, req))
    if "pack" in only:
        step("packing 100 MB", lambda: cases.packing(ctx))
    if "many" in only:
        step("packing many small files", lambda: cases.many_files(ctx))
    if "startup" in only and installer:
        step("start-up of plugin_wrapper and plugins.list", lambda: cases.start_up(ctx))
    if "swap" in only and installer:
        step("upgrade of a running web plugin", lambda: swap.hotswap(reps, ctx.scratch("case8")))
    if "fleet" in only and installer:
        step("deploy to 10 hosts with Ansible", lambda: cases.fleet_deploy(ctx, fleet.deploy))
    if not installer:
        print("NOTE: plugins.install is not installed: cases 4, 6-9 skipped", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return rows


def table(rows: Sequence[Row]) -> str:
    """The results as a fixed-width text table."""
    head = [
        "case",
        "ours",
        "baseline",
        "ours s",
        "base s",
        "ratio",
        "target",
        "met",
        "peak RSS MiB",
    ]
    lines = [head]
    for r in rows:
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        lines.append(
            [
                r.case,
                r.ours,
                r.baseline,
                f"{r.ours_s:.3f}",
                f"{r.base_s:.3f}",
                f"{r.ratio:.2f}",
                r.target,
                met,
                f"{r.ours_peak_rss:.0f}/{r.base_peak_rss:.0f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.case}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", "notes:", *notes] if notes else []))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `make bench`."""
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
    p.add_argument("--reps", type=int, help="repetitions per case (default 5, quick 2)")
    p.add_argument("--only", nargs="+", choices=CASES, default=list(CASES), help="cases to run")
    p.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = p.parse_args(argv)
    reps = args.reps or (2 if args.quick else 5)
    start = time.perf_counter()
    try:
        rows = run(args.only, reps, args.quick)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    cores = os.cpu_count() or 1
    print(
        f"{cores} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"{reps} runs each (medians), {elapsed:.0f} s in all"
    )
    print(table(rows))
    doc = {
        "cores": cores,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "quick": args.quick,
        "repetitions": reps,
        "uv_backend": _uv_available(),
        "re2_matcher": _re2_available(),
        "elapsed_s": round(elapsed, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": [r.as_dict() for r in rows],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
