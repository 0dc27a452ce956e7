"""Recovery after a crash: finish or revert what an interrupted command left, then drop the
virtualenvs no runtime entry uses. Runs under the runtime lock, on its every entry.
"""

from __future__ import annotations

import logging
from pathlib import Path

from toolchain.core.errors import ToolchainError
from toolchain.core.layout import MANIFEST, Runtime
from toolchain.installer import journal
from toolchain.runtime.registry import entry_exists, read_json, venv_of

log = logging.getLogger(__name__)


def recover(runtime: Runtime) -> None:
    """Complete or revert interrupted transactions, then drop what no entry uses."""
    journal.recover(runtime, lambda moves, staged: _finish_hooks(runtime, moves, staged))
    collect_venvs(runtime)
    _collect_leftovers(runtime)


def _finish_hooks(
    runtime: Runtime, moves: list[journal.Move], staged: list[list[int] | None]
) -> None:
    """What an interrupted commit did not get to: the hooks of each of its entries, with
    the health gate (a version that fails it is swapped back, and said so)."""
    from toolchain.installer import gate, hooks  # config and the running side: only then

    for move in moves:
        if not entry_exists(runtime, move.name):
            hooks.after_uninstall(runtime, move.name)
    for failed in gate.after_commit(runtime, moves, staged=staged):
        log.warning(
            "plugin %s %s failed its health checks; %s is back in place: %s",
            failed.name, failed.new, failed.back, failed.output.replace("\n", " / "),
        )  # fmt: skip


def _collect_leftovers(runtime: Runtime) -> None:
    """What a command killed at the wrong moment leaves besides its entries.

    Its staging's requirements file in tmp/, the env cache of a plugin it uninstalled, and
    the archived copy of the version a rollback restored (identical to the installed one:
    a second rollback would install it again), a cancelled tree the health gate or a
    rollback was dropping from the archive, and archived versions beyond
    `$PLUGIN_ARCHIVE_KEEP`.
    """
    for leftover in runtime.tmp.glob(".requirements-*") if runtime.tmp.is_dir() else []:
        leftover.unlink(missing_ok=True)
    cache = runtime.cache / "env"
    for cached in cache.iterdir() if cache.is_dir() else []:
        name = cached.name.split(".", 1)[0]
        if cached.name.startswith(".") or not entry_exists(runtime, name):
            cached.unlink(missing_ok=True)
    from toolchain.installer import archive

    for directory in runtime.archive.iterdir() if runtime.archive.is_dir() else []:
        for cancelled in directory.glob(".*"):  # a tree the health gate was dropping
            journal.drop(cancelled)
        _drop_archived_copy(runtime, directory.name)
        archive.prune(runtime, directory.name)  # what a command killed before it pruned


def _drop_archived_copy(runtime: Runtime, name: str) -> None:
    from toolchain.installer import archive, repository

    kept = archive.versions(runtime, name)
    if not kept or not entry_exists(runtime, name) or runtime.plugin(name).is_symlink():
        return
    try:
        same = repository.content_hash(read_json(kept[0].path / MANIFEST)) == (
            repository.installed_hash(runtime, name)
        )
    except ToolchainError:
        return  # a damaged entry: nothing to conclude
    if same:
        journal.drop(kept[0].path)


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
    if removed:
        from toolchain.localenv import store

        store.collect(runtime.store)
    return removed
