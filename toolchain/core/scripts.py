"""Absolute paths of this installation's console scripts and interpreter.

Cron and the process manager run commands without the caller's `PATH`: what they run
is written down with absolute paths, found beside the running interpreter.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from toolchain.core.errors import ToolchainError


def interpreter() -> Path:
    """The interpreter running the toolchain, as invoked (a virtualenv's link is kept)."""
    return Path(sys.executable).absolute()


def console_script(name: str) -> Path:
    """The absolute path of console script `name` of this installation."""
    for directory in (interpreter().parent, Path(sysconfig.get_path("scripts"))):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found).absolute()
    raise ToolchainError(f"console script {name!r} not found beside {interpreter()}: reinstall")
