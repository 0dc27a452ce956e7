"""`plugin_wrapper` and `plugin_env`: run a command, or a shell, in a plugin's env.

Cron runs `plugin_wrapper` often: this module imports only what computing the env from
its cache needs; configparser and jinja2 are loaded by `toolchain.plugin_env` on a miss.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from toolchain.cli import execute, parser
from toolchain.errors import NotInstalled, ToolchainError, UsageError
from toolchain.layout import CONFIG_INI, Runtime


def _exec(command: list[str], env: dict[str, str]) -> None:
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise ToolchainError(f"{command[0]}: cannot run it: {exc.strerror}") from None


def _installed_dir(name: str) -> tuple[Runtime, Path]:
    rt = Runtime.current()
    plugin_dir = rt.plugin(name)
    if not (plugin_dir / CONFIG_INI).is_file():
        raise NotInstalled(f"plugin {name!r} is not installed in {rt.home}; see plugins.list")
    return rt, plugin_dir


def plugin_wrapper_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugin_wrapper NAME -- CMD [ARGS...]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--") if "--" in args else len(args)
    own, command = args[:split], args[split + 1 :]
    p = parser("plugin_wrapper", "Run one command in a plugin's env; its exit code is returned.")
    p.add_argument("name", metavar="NAME", help="the installed plugin")
    p.usage = "plugin_wrapper [-h] [-v] NAME -- CMD [ARGS...]"

    def body(parsed: argparse.Namespace) -> None:
        from toolchain.plugin_env import variables

        if not command:
            raise UsageError("no command given: use plugin_wrapper NAME -- CMD [ARGS...]")
        rt, plugin_dir = _installed_dir(parsed.name)
        _exec(command, variables(rt, parsed.name, plugin_dir))

    return execute(p, body, own)


def plugin_env_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugin_env [NAME]`: an interactive shell in the plugin env."""
    p = parser(
        "plugin_env",
        "Start an interactive shell ($SHELL, else /bin/bash) in a plugin's env; without "
        "NAME, in the env of the plugin directory you stand in.",
    )
    p.add_argument("name", nargs="?", metavar="NAME")

    def body(args: argparse.Namespace) -> None:
        from toolchain.plugin_env import find_plugin_dir, variables

        if args.name:
            rt, plugin_dir = _installed_dir(args.name)
            name = args.name
        else:
            from toolchain.config import load

            found = find_plugin_dir(Path.cwd())
            if found is None:
                raise UsageError("not inside a plugin directory (no config.ini above): give NAME")
            rt, plugin_dir, name = Runtime.current(), found, load(found / CONFIG_INI).name
        shell = os.environ.get("SHELL") or "/bin/bash"
        _exec([shell], variables(rt, name, plugin_dir))

    return execute(p, body, argv)
