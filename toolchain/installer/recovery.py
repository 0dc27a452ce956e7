"""Recovery after a crash: finish or revert what an interrupted command left, then drop the
virtualenvs no runtime entry uses. Runs under the runtime lock, on its every entry.
"""

from __future__ import annotations

import logging
from pathlib import Path

from toolchain.core.layout import Runtime
from toolchain.installer import journal
from toolchain.runtime.registry import entry_exists, venv_of

log = logging.getLogger(__name__)


def recover(runtime: Runtime) -> None:
    """Complete or revert interrupted transactions, then drop unreferenced virtualenvs."""
    finished = journal.recover(runtime)
    collect_venvs(runtime)
    if finished:
        from toolchain.installer import hooks  # config and the running side: only then

        for name in finished:
            if entry_exists(runtime, name):
                hooks.finalize(runtime, name)


def collect_venvs(runtime: Runtime) -> list[Path]:
    """Remove the virtualenvs that no runtime entry references; return them."""
    if not runtime.venvs.is_dir() or not runtime.plugins.is_dir():
        return []
    used = set()
    for entry in runtime.plugins.iterdir():
        venv = venv_of(entry)
        if venv is not None:
            used.add(venv.name)
    removed = []
    for venv in sorted(runtime.venvs.iterdir()):
        if venv.name not in used:
            try:
                journal.drop(venv)
            except OSError as exc:  # only space is lost: the next command retries
                log.warning("%s: cannot remove this unused virtualenv: %s", venv, exc)
                continue
            removed.append(venv)
    return removed
