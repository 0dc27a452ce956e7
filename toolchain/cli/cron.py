"""`plugin_cron`: the job wrapper that every line of the runtime's crontab calls."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from toolchain.cli.command import execute, parser
from toolchain.core.errors import UsageError


def build_parser() -> argparse.ArgumentParser:
    """The `plugin_cron` command line."""
    p = parser(
        "plugin_cron",
        "Run one cron job of a plugin in its plugin env: no overlapping runs, a timeout, "
        "output appended to the runtime's log/NAME/cron.log.",
    )
    p.add_argument("name", help="the installed plugin")
    p.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="seconds before the job is terminated (default: 0, no limit)",
    )
    p.usage = "plugin_cron [-h] [-v] NAME [--timeout S] -- CMD [ARGS...]"
    return p


def _run(args: argparse.Namespace, command: list[str]) -> int:
    from toolchain.core.layout import runtime_home
    from toolchain.core.scripts import console_script
    from toolchain.running.cron_job import run_job

    if not command:
        raise UsageError("no command given: use plugin_cron NAME -- CMD [ARGS...]")
    if args.timeout < 0:
        raise UsageError(f"--timeout {args.timeout:g}: must not be negative")
    wrapper = console_script("plugin_wrapper")
    return run_job(runtime_home(), args.name, command, wrapper=wrapper, timeout=args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugin_cron`."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command, options included.
    split = args.index("--") if "--" in args else len(args)
    own, command = args[:split], args[split + 1 :]
    return execute(build_parser(), lambda parsed: _run(parsed, command), own)
