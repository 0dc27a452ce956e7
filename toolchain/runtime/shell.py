"""`plugin_env`'s interactive shell: the user's startup file first, then the plugin env.

An interactive shell reads the user's startup file (`~/.bashrc`, `~/.zshrc`, `$ENV`)
after it is started, and pyenv, conda or nvm put their own directories first on PATH
there: the plugin's `python` would lose to theirs. So the shell is started with a
startup file of ours that runs the user's, then puts the plugin's entries first again
on PATH, PYTHONPATH, LD_LIBRARY_PATH and NODE_PATH, and shows the plugin in the prompt.
bash gets it with `--rcfile`, zsh through `ZDOTDIR`, POSIX shells (sh, dash, ksh)
through `ENV`; any other shell is started as it is.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from toolchain.core.layout import Runtime

PATH_VARIABLES = ("PATH", "PYTHONPATH", "LD_LIBRARY_PATH", "NODE_PATH")
_POSIX = {"sh", "dash", "ksh", "mksh", "ash", "busybox"}
_ORIGINAL = "PLUGIN_ENV_USER_"  # the user's own ZDOTDIR / ENV, kept for our startup file


def _plugin_entries(env: Mapping[str, str], base: Mapping[str, str], var: str) -> str | None:
    """The entries the plugin env put before what `var` held in `base`."""
    value, before = env.get(var), base.get(var)
    if not value or value == before:
        return None
    if before and value.endswith(os.pathsep + before):
        return value[: -len(before) - 1]
    return value


def startup_lines(env: Mapping[str, str], base: Mapping[str, str]) -> list[str]:
    """Shell lines that put the plugin env first again and name the plugin in the prompt."""
    lines = []
    for var in PATH_VARIABLES:
        entries = _plugin_entries(env, base, var)
        if entries:
            lines.append(f'export {var}={shlex.quote(entries)}"${{{var}:+:${var}}}"')
    return lines


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def command(
    rt: Runtime, name: str, shell: str, env: dict[str, str], base: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of an interactive `shell` in the env of plugin `name`."""
    kind = os.path.basename(shell)
    if kind not in {"bash", "zsh"} | _POSIX:
        return [shell], env
    directory = rt.cache / "shell" / name
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    header = f"# Written by plugin_env for plugin {name}: yours first, then the plugin env."
    again = startup_lines(env, base)
    label = shlex.quote(f"({name}) ")
    if kind == "bash":
        rc = directory / "bashrc"
        _write(rc, [header, '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"', *again,
                    f'PS1={label}"${{PS1-\\$ }}"'])  # fmt: skip
        return [shell, "--rcfile", str(rc)], env
    if kind == "zsh":
        user = f"${{{_ORIGINAL}ZDOTDIR:-$HOME}}"
        _write(directory / ".zshenv", [header, f'[ -f "{user}/.zshenv" ] && . "{user}/.zshenv"'])
        _write(directory / ".zshrc", [
            header, f'ZDOTDIR="{user}"', '[ -f "$ZDOTDIR/.zshrc" ] && . "$ZDOTDIR/.zshrc"',
            *again, f'PROMPT={label}"$PROMPT"',
        ])  # fmt: skip
        if "ZDOTDIR" in env:
            env[f"{_ORIGINAL}ZDOTDIR"] = env["ZDOTDIR"]
        env["ZDOTDIR"] = str(directory)
        return [shell], env
    rc = directory / "shrc"
    user = f"${{{_ORIGINAL}ENV:-}}"
    _write(rc, [header, f'[ -n "{user}" ] && [ -f "{user}" ] && . "{user}"', *again,
                f'PS1={label}"${{PS1-\\$ }}"'])  # fmt: skip
    if "ENV" in env:
        env[f"{_ORIGINAL}ENV"] = env["ENV"]
    env["ENV"] = str(rc)
    return [shell], env
