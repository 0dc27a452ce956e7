"""`plugins.rollback NAME`: cancel an upgrade by restoring the newest archived version.

The archived tree is copied to a staging entry (the archive keeps it until the commit),
its virtualenv is rebuilt offline from its own wheelhouse, its postinstall runs, and it
is swapped in like any install: a failure or a crash leaves the current version.
"""

from __future__ import annotations

import os
import shutil

from toolchain.artifact import signature
from toolchain.core.errors import InstallError, NotInstalled, ResolutionError
from toolchain.core.layout import MANIFEST, REQ_OUT, VENV, Runtime
from toolchain.installer import (
    archive,
    gate,
    inspection,
    install,
    journal,
    pins,
    recovery,
    repository,
    resolve,
    stage,
    trust,
)
from toolchain.runtime import registry


def _check_requirers(rt: Runtime, name: str, restored: resolve.Candidate) -> None:
    current, _linked = repository.installed(rt)
    problems = [
        f"{other.label} requires {name}{spec}"
        for other in current.values()
        if other.name != name
        for dep, spec in other.requirements()
        if dep == name and not resolve.satisfies(restored, spec)
    ]
    if problems:
        raise ResolutionError(
            [f"{restored.label} cannot come back: {p}" for p in problems]
            + ["roll those back first, or use --force"]
        )


def rollback(rt: Runtime, name: str, *, force: bool = False) -> install.Change:
    """Replace the installed `name` with its newest archived version; return the change."""
    if not registry.entry_exists(rt, name):
        raise NotInstalled(
            f"plugin {name} is not installed: rollback cancels an upgrade of an installed "
            "plugin; install the version you want with plugins.install FILE"
        )
    kept = archive.versions(rt, name)
    if not kept:
        raise NotInstalled(
            f"plugin {name}: no archived version in {rt.archive}; nothing to roll back to"
        )
    if registry.entry_kind(rt, name) is registry.EntryKind.DEVLINK:
        raise InstallError(
            f"plugin {name} is devlinked; uninstall the link before rolling back to {kept[0].label}"
        )
    newest = kept[0]
    report = inspection.check_tree(newest.path, registry.read_json(newest.path / MANIFEST))
    if not report.ok:
        changed = (report.modified + report.missing + report.extra)[0]
        raise InstallError(
            f"plugin {name}: the archived {newest.label} differs from its manifest ({changed!r} "
            f"and {len(report.modified + report.missing + report.extra) - 1} more); it is not "
            "restored: install that version from its .plugin file instead"
        )
    where = f"plugin {name}: the archived {newest.label}"
    trust.enforce(signature.documents_of_tree(newest.path), where, rt)
    if not force:
        _check_requirers(rt, name, repository.tree_candidate(newest.path, name))
    incoming = {name: pins.of_tree(newest.path, name)}
    pins.check(rt, incoming, force=force, what=f"rolling back {name} to {newest.label}")
    stage.check_overrides(rt, name)
    current = registry.describe(rt, name) if registry.entry_exists(rt, name) else None
    tid = journal.new_id()
    staged = journal.staging_path(rt, name, tid)
    try:
        shutil.copytree(newest.path, staged, symlinks=True)
        journal.drop(staged / VENV)  # the archived link points at a dropped virtualenv
        if (staged / REQ_OUT).is_file():  # its pins changed now: make in a requirer sees it
            os.utime(staged / REQ_OUT)
        stage.prepare(rt, name, staged, tid)
        # The cancelled version is kept (hidden: never offered to a rollback) only until
        # the restored one passes its checks.
        cancelled = archive.slot(rt, name, tid)
        if cancelled is not None:
            cancelled = cancelled.with_name(f".{cancelled.name}")
        moves = [journal.Move(name, staged, journal.backup_path(rt, name, tid), cancelled)]
        failed: list[gate.Failed] = []
        journal.commit(rt, tid, moves, after=lambda: failed.extend(gate.after_commit(rt, moves)))
    except BaseException:
        install.abort(rt, tid)
        raise
    if not failed:  # a second rollback goes further back
        journal.drop(newest.path)
        if cancelled is not None:
            journal.drop(cancelled)
    recovery.collect_venvs(rt)
    gate.raise_if(failed)
    was = f"{current.version}-{current.release}" if current else None
    return install.Change(name, newest.version, newest.release, was)
