"""Crash-safe replacement of runtime entries: staging, backup, journal and recovery.

A transaction prepares complete staging entries (`plugins/.staging-NAME-ID`) and then
commits: it writes a journal (the decision to commit), moves each current entry aside
(`plugins/.backup-NAME-ID`), renames each staging entry into place, moves the backups to
be kept into the runtime's archive, and drops the journal and the other backups.
`recover` finishes a commit whose journal exists (roll forward) and otherwise throws
staging debris away (roll back), so a SIGKILL at any moment leaves either every old entry
or every new one.

Every step goes through `rename`, `write_journal`, `remove_journal` or `drop`, and past a
`failpoint`, so that tests can make any step fail or kill the process at it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolchain.core import settings
from toolchain.core.errors import InstallError
from toolchain.core.layout import Runtime

log = logging.getLogger(__name__)

STAGING = ".staging-"
BACKUP = ".backup-"
JOURNAL = ".journal-"


def new_id() -> str:
    """A unique id for the entries of one transaction (no '-': names are split on it)."""
    return uuid.uuid4().hex[:12]


def staging_path(runtime: Runtime, name: str, tid: str) -> Path:
    """Where the new entry of `name` is prepared in transaction `tid`."""
    return runtime.plugins / f"{STAGING}{name}-{tid}"


def backup_path(runtime: Runtime, name: str, tid: str) -> Path:
    """Where the current entry of `name` is moved aside in transaction `tid`."""
    return runtime.plugins / f"{BACKUP}{name}-{tid}"


def failpoint(point: str) -> None:
    """Kill this process with SIGKILL when `$PLUGIN_FAILPOINT` names `point` (crash tests)."""
    if settings.failpoint() == point:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    """Make the directory entries of `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rename(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` (same directory) and make it durable."""
    os.rename(src, dst)
    fsync_dir(dst.parent)


def drop(path: Path) -> None:
    """Remove an entry: a symlink (never followed), a file or a whole tree."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def write_journal(runtime: Runtime, tid: str, moves: list[Move]) -> Path:
    """Record the decision to commit `moves`, durably, and return the journal's path."""
    path = runtime.plugins / f"{JOURNAL}{tid}.json"
    tmp = path.with_name(path.name + ".tmp")
    doc = [
        {
            "name": m.name,
            "staging": str(m.staging) if m.staging else None,
            "backup": str(m.backup),
            "archive": str(m.archive) if m.archive else None,
        }
        for m in moves
    ]
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(doc, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def remove_journal(path: Path) -> None:
    """Forget a journal: its commit is complete."""
    path.unlink()
    fsync_dir(path.parent)


@dataclass(frozen=True)
class Move:
    """One entry of a commit: `name` gets `staging`, or goes away when `staging` is None.

    With `archive`, the replaced entry is kept there instead of being dropped.
    """

    name: str
    staging: Path | None
    backup: Path
    archive: Path | None = None


def _apply(runtime: Runtime, move: Move) -> None:
    """Bring one move to its committed state; safe to repeat after a crash."""
    target = runtime.plugin(move.name)
    if move.staging is not None and not (move.staging.exists() or move.staging.is_symlink()):
        return  # already renamed into place
    if (target.exists() or target.is_symlink()) and not (
        move.backup.exists() or move.backup.is_symlink()
    ):
        rename(target, move.backup)
        failpoint("backup-renamed")
    if move.staging is not None:
        rename(move.staging, target)
        failpoint("staging-renamed")


def _finish(runtime: Runtime, journal: Path, moves: list[Move]) -> None:
    for move in moves:
        _apply(runtime, move)
    for move in moves:  # before the journal goes: a repeated _finish finds them moved
        if move.archive is not None and move.backup.is_dir() and not move.backup.is_symlink():
            move.archive.parent.mkdir(parents=True, exist_ok=True)
            rename(move.backup, move.archive)
            fsync_dir(move.backup.parent)
            failpoint("backup-archived")
    # Every backup goes while the journal stands: without a journal, a backup whose entry
    # is missing is restored, and a repeated _finish finds each move done.
    for move in moves:
        drop(move.backup)


def commit(
    runtime: Runtime,
    tid: str,
    moves: list[Move],
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> None:
    """Swap every staging entry into place (or remove entries) as one transaction.

    The journal covers the hooks too: `before` runs once the commit is decided (an
    uninstall stops the plugin's daemons), `after` once the entries are in place (cron
    jobs, daemons, the override file); the journal goes only then, so that a crash at
    any point leaves recovery to finish the entries *and* their hooks.
    """
    try:
        journal = write_journal(runtime, tid, moves)
    except OSError as exc:
        raise InstallError(f"{runtime.plugins}: cannot write the journal: {exc}") from None
    failpoint("journal-written")
    try:
        if before is not None:
            before()
            failpoint("before-hooks-ran")
        _finish(runtime, journal, moves)
        failpoint("hooks-pending")
        if after is not None:
            after()
        remove_journal(journal)
        failpoint("journal-removed")
    except OSError as exc:
        # The journal is the decision: the next command completes the commit.
        raise InstallError(
            f"{runtime.plugins}: interrupted while swapping ({exc}); "
            "the next plugins.* command completes it"
        ) from None


def _read_journal(path: Path) -> list[Move] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [
            Move(
                d["name"],
                Path(d["staging"]) if d["staging"] else None,
                Path(d["backup"]),
                Path(d["archive"]) if d.get("archive") else None,
            )
            for d in doc
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recover(runtime: Runtime, hooks: Callable[[list[Move]], None]) -> list[str]:
    """Finish or revert what an interrupted command left; return the names it changed.

    A journal's moves are completed, then `hooks` runs for them, then the journal goes.
    """
    plugins = runtime.plugins
    if not plugins.is_dir():
        return []
    done: list[str] = []
    for journal in sorted(plugins.glob(f"{JOURNAL}*.json")):
        moves = _read_journal(journal)
        if moves is None:  # written by replace only once complete: a corrupt one is foreign
            log.warning("%s: unreadable journal, ignored", journal)
            continue
        log.warning("%s: completing an interrupted commit", journal)
        _finish(runtime, journal, moves)
        hooks(moves)
        remove_journal(journal)
        done += [m.name for m in moves]
    for entry in sorted(plugins.iterdir()):
        name = entry.name
        if name.startswith(JOURNAL) and name.endswith(".tmp"):
            entry.unlink()
        elif name.startswith(STAGING):
            log.warning("%s: removing an unfinished installation", entry)
            drop(entry)
        elif name.startswith(BACKUP):
            plugin = name[len(BACKUP) :].rpartition("-")[0]
            target = runtime.plugin(plugin)
            if plugin and not (target.exists() or target.is_symlink()):
                log.warning("%s: restoring the previous installation of %s", entry, plugin)
                rename(entry, target)
            else:
                drop(entry)
    return done
