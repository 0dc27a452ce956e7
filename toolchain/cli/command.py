"""What every command shares: the parser with `--debug`, one `ERROR` line, the exit codes."""

from __future__ import annotations

import os
import sys

from toolchain.core.errors import ToolchainError, UsageError

# typing.TYPE_CHECKING without importing typing, which cron's fast path need not pay for
TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse is imported when a parser is built, not by plugin_wrapper's fast path
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _red(text: str) -> str:
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
        return f"\033[31m{text}\033[0m"
    return text


def warnings_to_stderr() -> None:
    """Log WARNING lines (`WARNING: ...`) to stderr; logging is imported only here, so
    commands that never warn start faster."""
    import logging

    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)


def error(message: str) -> None:
    """Print one `ERROR` line on stderr."""
    print(f"{_red('ERROR')}: {message}", file=sys.stderr)


JSON_SCHEMA = 1  # of the operator commands' --json reports (README: "JSON reports")


def print_json(report: dict[str, Any]) -> None:
    """One operator command's --json report on stdout: `schema`, then its own keys."""
    import json

    print(json.dumps({"schema": JSON_SCHEMA, **report}, indent=1, sort_keys=True))


def change_row(change: Any, action: str | None = None) -> dict[str, Any]:
    """One plugin a command changed, as its --json report lists it."""
    return {
        "name": change.name,
        "version": change.version,
        "release": change.release,
        "previous": change.previous,
        "action": action or ("installed" if change.previous is None else "replaced"),
    }


def json_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"a JSON report {what} (README)")
    p.set_defaults(json_errors=True)  # a failure is a JSON report too: {"error": ...}


def _json_failure(
    p: argparse.ArgumentParser, args: argparse.Namespace, message: str, details: list[str]
) -> None:
    """A failed command asked for a JSON report (`json_option`): the failure is one too."""
    if getattr(args, "json", False) and getattr(args, "json_errors", False):
        command = p.prog.removeprefix("plugins.")
        print_json({"command": command, "changed": False, "error": message, "details": details})


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every command shares."""
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("-v", "--debug", action="store_true", help="show tracebacks on failure")
    return p


def execute(
    p: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None,
    *,
    runtime_writer: bool = False,
) -> int:
    """Parse `argv`, run `body`, and turn toolchain errors into one line and an exit code.

    A `runtime_writer` (the operator's commands) runs with group and others' write bits
    masked, whatever the caller's umask: another user must never be able to change a
    plugin, a virtualenv, the lock or a cache the runtime's commands trust.
    """
    args = p.parse_args(argv)
    if runtime_writer:
        os.umask(os.umask(0o022) | 0o022)
    try:
        return body(args) or EXIT_OK
    except UsageError as exc:
        if args.debug:
            raise
        p.print_usage(sys.stderr)
        error(str(exc))
        _json_failure(p, args, str(exc), [])
        return EXIT_USAGE
    except ToolchainError as exc:
        if args.debug:
            raise
        details = list(getattr(exc, "details", ()))  # what a failing check printed
        for line in details:
            print(f"  {line}", file=sys.stderr)
        error(str(exc))
        _json_failure(p, args, str(exc), details)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except BrokenPipeError:  # `plugins.info FILE | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141  # 128 + SIGPIPE, as a command killed by the signal reports
