"""The one place that runs subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from toolchain.core.errors import CommandError

# Variables that would send pip's installs somewhere else than the target environment.
_REDIRECTING = (
    "PIP_USER",
    "PIP_TARGET",
    "PIP_PREFIX",
    "PIP_ROOT",
    "PIP_REQUIRE_VIRTUALENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "__PYVENV_LAUNCHER__",
)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the current environment without the variables that redirect pip."""
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if extra:
        env.update(extra)
    return env


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str = "",
) -> str:
    """Run `cmd`, return its combined output; raise CommandError with its tail on failure."""
    argv = [str(c) for c in cmd]
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=dict(env) if env is not None else clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise CommandError(argv, 127, str(exc), what) from None
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, what)
    return proc.stdout


def python() -> str:
    """The interpreter the toolchain runs on, which also runs pip and pip-tools."""
    return sys.executable
