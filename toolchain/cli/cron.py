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
    for flag, (check, metavar, text) in cron_job.OPTIONS.items():
        if check is None:
            p.add_argument(flag, action="store_true", help=text)
        else:
            p.add_argument(flag, type=_typed(check), metavar=metavar, help=text)
    p.set_defaults(timeout=0.0, random_sleep=0.0)
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
