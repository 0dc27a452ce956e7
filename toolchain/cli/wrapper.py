"""`plugin_wrapper` and `plugin_env`: run a command, or a shell, in a plugin's env.

Cron runs `plugin_wrapper` often: this module imports only what computing the env from
its cache needs; configparser and jinja2 are loaded by `toolchain.runtime.plugin_env` on a
miss.
"""

from __future__ import annotations

import os
import sys

# typing.TYPE_CHECKING without importing typing, which cron's fast path need not pay for
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path

    from toolchain.core.layout import Runtime


def _exec(command: list[str], env: dict[str, str]) -> None:
    from toolchain.core.errors import ToolchainError

    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise ToolchainError(f"{command[0]}: cannot run it: {exc.strerror}") from None


def _installed_dir(name: str) -> tuple[Runtime, Path]:
    from toolchain.core.errors import NotInstalled
    from toolchain.core.layout import CONFIG_INI, Runtime

    rt = Runtime.current()
    plugin_dir = rt.plugin(name)
    if not (plugin_dir / CONFIG_INI).is_file():
        raise NotInstalled(f"plugin {name!r} is not installed in {rt.home}; see plugins.list")
    from toolchain.runtime.plugin_env import require_venv

    require_venv(name, plugin_dir)
    return rt, plugin_dir


def plugin_wrapper_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugin_wrapper NAME -- CMD [ARGS...]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--") if "--" in args else len(args)
    own, command = args[:split], args[split + 1 :]
    if len(own) == 1 and not own[0].startswith("-") and command:
        # Fast path for cron: `NAME -- CMD` with a warm env cache execs without argparse,
        # pathlib or the configuration code; anything else takes the full path below.
        from toolchain.runtime.envcache import cached_variables

        env = cached_variables(own[0])
        if env is not None:
            try:
                os.execvpe(command[0], command, env)
            except OSError:
                pass  # reported by the full path
    from toolchain.cli.command import execute, parser
    from toolchain.core.errors import UsageError

    p = parser("plugin_wrapper", "Run one command in a plugin's env; its exit code is returned.")
    p.add_argument("name", metavar="NAME", help="the installed plugin")
    p.add_argument("--cwd", action="store_true", help="run it in the plugin's directory")
    p.add_argument(
        "--empty",
        action="store_true",
        help="start from an empty environment (but HOME, USER, LOGNAME, the system PATH "
        "and the PLUGIN_* settings), then add the plugin env",
    )
    p.add_argument(
        "--ignore-cache",
        action="store_true",
        help="compute the plugin env again from its configuration files (and cache it)",
    )
    p.usage = "plugin_wrapper [-h] [-v] NAME [--cwd] [--empty] [--ignore-cache] -- CMD [ARGS...]"

    def body(parsed: argparse.Namespace) -> None:
        from toolchain.runtime.plugin_env import empty_base, variables

        if not command:
            raise UsageError("no command given: use plugin_wrapper NAME -- CMD [ARGS...]")
        rt, plugin_dir = _installed_dir(parsed.name)
        base = empty_base() if parsed.empty else None
        env = variables(rt, parsed.name, plugin_dir, base=base, fresh=parsed.ignore_cache)
        if parsed.cwd:
            os.chdir(plugin_dir)
            env["PWD"] = str(plugin_dir)  # as a shell's cd sets it
        _exec(command, env)

    return execute(p, body, own)


def plugin_env_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugin_env [NAME]`: an interactive shell in the plugin env."""
    from toolchain.cli.command import execute, parser
    from toolchain.core.errors import UsageError

    p = parser(
        "plugin_env",
        "Start an interactive shell ($SHELL, else /bin/bash) in a plugin's env; without "
        "NAME, in the env of the plugin directory you stand in (or in any directory "
        "below it). Your startup file "
        "(~/.bashrc, ~/.zshrc, $ENV) runs first, then the plugin's entries go first again "
        "on PATH, PYTHONPATH, LD_LIBRARY_PATH and NODE_PATH; the prompt shows (NAME).",
    )
    p.add_argument("name", nargs="?", metavar="NAME")

    def body(args: argparse.Namespace) -> None:
        from toolchain.runtime.plugin_env import (
            find_plugin_dir,
            require_venv,
            variables,
            working_dir,
        )

        if args.name:
            rt, plugin_dir = _installed_dir(args.name)
            name = args.name
        else:
            from toolchain.config.layers import load
            from toolchain.core.layout import CONFIG_INI, Runtime

            found = find_plugin_dir(working_dir())
            if found is None:
                raise UsageError("not inside a plugin directory (no config.ini above): give NAME")
            rt, plugin_dir, name = Runtime.current(), found, load(found / CONFIG_INI).name
            require_venv(name, plugin_dir)
        from toolchain.runtime import shell

        program = os.environ.get("SHELL") or "/bin/bash"
        _exec(*shell.command(rt, name, program, variables(rt, name, plugin_dir), os.environ))

    return execute(p, body, argv)
