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
    """The argv and environment of an interactive `shell` in the env of plugin `name`.

    When the startup file cannot be written (a read-only runtime), the shell starts as
    it is: the user's startup file then runs last.
    """
    kind = os.path.basename(shell)
    if kind not in {"bash", "zsh"} | _POSIX:
        return [shell], env
    directory = rt.cache / "shell" / name
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
        return _startup(kind, shell, name, directory, env, base)
    except OSError:
        return [shell], env


def _remember(env: dict[str, str], var: str, ours: Path) -> None:
    """Keep the user's own `var` for our startup file (not ours, in a nested plugin_env)."""
    value = env.get(var)
    if value is not None and not value.startswith(f"{ours.parent}{os.sep}"):
        env[f"{_ORIGINAL}{var}"] = value


def _startup(
    kind: str,
    shell: str,
    name: str,
    directory: Path,
    env: dict[str, str],
    base: Mapping[str, str],
) -> tuple[list[str], dict[str, str]]:
    header = f"# Written by plugin_env for plugin {name}: yours first, then the plugin env."
    again = startup_lines(env, base)
    label = shlex.quote(f"({name}) ")
    prompt = f'PS1={label}"${{PS1-\\$ }}"'  # bash and POSIX shells; zsh's is PROMPT
    if kind == "bash":
        rc = directory / "bashrc"
        _write(rc, [header, '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"', *again, prompt])
        return [shell, "--rcfile", str(rc)], env
    if kind == "zsh":
        # zsh reads $ZDOTDIR/.zshenv then $ZDOTDIR/.zshrc: ours run the user's with the
        # user's ZDOTDIR (which their .zshenv may change), then ours takes over again.
        _write(directory / ".zshenv", [
            header, f'_plugin_env_ours="$ZDOTDIR"; ZDOTDIR="${{{_ORIGINAL}ZDOTDIR:-$HOME}}"',
            '[ -f "$ZDOTDIR/.zshenv" ] && . "$ZDOTDIR/.zshenv"',
            '_plugin_env_user="$ZDOTDIR"; ZDOTDIR="$_plugin_env_ours"',
        ])  # fmt: skip
        _write(directory / ".zshrc", [
            header, 'ZDOTDIR="$_plugin_env_user"; unset _plugin_env_ours _plugin_env_user',
            '[ -f "$ZDOTDIR/.zshrc" ] && . "$ZDOTDIR/.zshrc"', *again,
            f'PROMPT={label}"$PROMPT"',
        ])  # fmt: skip
        _remember(env, "ZDOTDIR", directory)
        env["ZDOTDIR"] = str(directory)
        return [shell], env
    rc = directory / "shrc"
    user = f"${{{_ORIGINAL}ENV:-}}"
    _write(rc, [
        header,
        # ENV goes back to the user's: a shell started from this one reads theirs, not ours.
        f'if [ -n "{user}" ]; then export ENV="{user}"; else unset ENV; fi',
        '[ -n "${ENV:-}" ] && [ -f "$ENV" ] && . "$ENV"', *again, prompt,
    ])  # fmt: skip
    _remember(env, "ENV", directory)
    env["ENV"] = str(rc)
    return [shell], env
