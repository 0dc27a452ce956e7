"""Crash-safe replacement of runtime entries: staging, backup, journal and recovery.

A transaction prepares complete staging entries (`plugins/.staging-NAME-ID`) and then
commits: it writes a journal (the decision to commit), swaps each staging entry with the
current one in a single atomic step (`renameat2(RENAME_EXCHANGE)`: `plugins/NAME` exists
throughout, so a cron job starting at that moment finds one version or the other), moves
the replaced entry aside (`plugins/.backup-NAME-ID`), moves the backups to be kept into
the runtime's archive, and drops the journal and the other backups. On a filesystem
without the exchange, the current entry is renamed aside first, then the staging entry
into place.
`recover` finishes a commit whose journal exists (roll forward) and otherwise throws
staging debris away (roll back), so a SIGKILL at any moment leaves either every old entry
or every new one.

Every step goes through `exchange`, `rename`, `write_journal`, `remove_journal` or
`drop`, and past a `failpoint`, so that tests can make any step fail or kill the process at it.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
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


failpoint = settings.crash_at


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


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)  # the C library this Python already uses
_renameat2 = getattr(_libc, "renameat2", None)


def exchange(a: Path, b: Path) -> bool:
    """Swap the entries `a` and `b` (same directory) atomically and durably.

    False, with nothing changed, when the system or filesystem cannot (no
    `renameat2`, or EINVAL/ENOSYS/ENOTSUP from it): the caller renames in two steps.
    """
    if _renameat2 is None:
        return False
    done = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if done != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            return False
        raise OSError(err, os.strerror(err), str(a))
    fsync_dir(b.parent)
    return True


def identity(path: Path) -> list[int] | None:
    """The inode of an entry (never followed). Entries of one commit share a directory,
    hence a device; the device number itself may change across a reboot (overlayfs,
    btrfs, renumbered disks), so it is not part of the identity."""
    try:
        return [path.lstat().st_ino]
    except OSError:
        return None


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
            # Tells recovery whether the exchange happened: the entry at NAME is then this one.
            "staged": identity(m.staging) if m.staging else None,
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


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _apply(runtime: Runtime, move: Move, staged: list[int] | None) -> None:
    """Bring one move to its committed state; safe to repeat after a crash.

    `staged` is the identity (inode) the staging entry had when the journal was
    written: an entry at NAME with that identity means the exchange is done and the
    staging path holds the replaced entry.
    """
    target = runtime.plugin(move.name)
    if move.staging is not None and not _exists(move.staging):
        return  # already in place, and what it replaced already moved aside
    if _exists(target) and not _exists(move.backup):
        if move.staging is not None:
            if staged is None or identity(target) != staged[-1:]:
                if not exchange(move.staging, target):
                    rename(target, move.backup)
                    failpoint("backup-renamed")
                    rename(move.staging, target)
                    failpoint("staging-renamed")
                    return
                failpoint("entries-exchanged")
            rename(move.staging, move.backup)  # it holds the replaced entry now
            failpoint("staging-renamed")
            return
        rename(target, move.backup)
        failpoint("backup-renamed")
    if move.staging is not None:
        rename(move.staging, target)
        failpoint("staging-renamed")


def _finish(runtime: Runtime, moves: list[Move], staged: list[list[int] | None]) -> None:
    for move, identity in zip(moves, staged, strict=True):
        _apply(runtime, move, identity)
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
    after: Callable[[], object] | None = None,
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
    staged = [identity(m.staging) if m.staging else None for m in moves]
    try:
        if before is not None:
            before()
            failpoint("before-hooks-ran")
        _finish(runtime, moves, staged)
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


def _read_journal(path: Path) -> tuple[list[Move], list[list[int] | None]] | None:
    """The moves of a journal and the identity of each one's staging entry."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        moves = [
            Move(
                d["name"],
                Path(d["staging"]) if d["staging"] else None,
                Path(d["backup"]),
                Path(d["archive"]) if d.get("archive") else None,
            )
            for d in doc
        ]
        staged = [[int(n) for n in d["staged"]] if d.get("staged") else None for d in doc]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return moves, staged


def recover(
    runtime: Runtime, hooks: Callable[[list[Move], list[list[int] | None]], None]
) -> list[str]:
    """Finish or revert what an interrupted command left; return the names it changed.

    A journal's moves are completed, then `hooks` runs for them (with the identity each
    one's staging entry had), then the journal goes.
    """
    plugins = runtime.plugins
    if not plugins.is_dir():
        return []
    done: list[str] = []
    for journal in sorted(plugins.glob(f"{JOURNAL}*.json")):
        read = _read_journal(journal)
        if read is None:  # written by replace only once complete: a corrupt one is foreign
            log.warning("%s: unreadable journal, ignored", journal)
            continue
        log.warning("%s: completing an interrupted commit", journal)
        moves, staged = read
        _finish(runtime, moves, staged)
        hooks(moves, staged)
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
