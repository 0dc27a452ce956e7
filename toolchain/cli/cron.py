"""`plugin_cron`: the job wrapper that every line of the runtime's crontab calls."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from toolchain.cli.command import execute, parser
from toolchain.core.errors import UsageError


def _typed(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from one of cron_job's value checks (their messages kept)."""

    def convert(text: str) -> object:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The `plugin_cron` command line."""
    from toolchain.running import cron_job  # subprocess and threading: only when it runs

    p = parser(
        "plugin_cron",
        "Run one cron job of a plugin in its plugin env: no overlapping runs, a timeout, "
        "output appended to the runtime's log/NAME/cron.log. A crontab line sets the "
        "options before its command: `*/5 * * * * --low --random-sleep 60 -- CMD`.",
    )
    p.add_argument("name", help="the installed plugin")
    p.add_argument(
        "--timeout",
        type=_typed(cron_job.seconds_value),
        default=0.0,
        help="seconds before the job is terminated (default: 0, no limit)",
    )
    p.add_argument(
        "--nice",
        type=_typed(cron_job.nice_value),
        metavar="N",
        help="run the job at niceness N (-20 to 19; below the current one needs root)",
    )
    p.add_argument(
        "--ionice",
        type=_typed(cron_job.ionice_value),
        metavar="CLASS[:LEVEL]",
        help="run the job in this I/O class: idle, best-effort[:0-7], realtime[:0-7] "
        "(root only), none",
    )
    p.add_argument(
        "--low",
        action="store_true",
        help=f"lowest priority: nice {cron_job.LOW_NICE} and the idle I/O class "
        "(--nice and --ionice win over it)",
    )
    p.add_argument(
        "--random-sleep",
        type=_typed(cron_job.seconds_value),
        default=0.0,
        metavar="SECONDS",
        help="first sleep a random time up to SECONDS: spreads the runs of a fleet that "
        "shares a schedule",
    )
    p.add_argument(
        "--no-lock",
        action="store_true",
        help="let runs overlap (by default a run is skipped while the previous one runs)",
    )
    p.usage = "plugin_cron [-h] [-v] NAME [--timeout S] [OPTIONS] -- CMD [ARGS...]"
    return p


def _run(args: argparse.Namespace, command: list[str]) -> int:
    from toolchain.core.layout import runtime_home
    from toolchain.core.scripts import console_script
    from toolchain.running import cron_job

    if not command:
        raise UsageError("no command given: use plugin_cron NAME -- CMD [ARGS...]")
    nice, ionice = args.nice, args.ionice
    if args.low:
        nice = cron_job.LOW_NICE if nice is None else nice
        ionice = (cron_job.IO_CLASSES["idle"], None) if ionice is None else ionice
    return cron_job.run_job(
        runtime_home(),
        args.name,
        command,
        wrapper=console_script("plugin_wrapper"),
        timeout=args.timeout,
        nice=nice,
        ionice=ionice,
        random_sleep=args.random_sleep,
        lock=not args.no_lock,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugin_cron`."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command, options included.
    split = args.index("--") if "--" in args else len(args)
    own, command = args[:split], args[split + 1 :]
    return execute(build_parser(), lambda parsed: _run(parsed, command), own)
