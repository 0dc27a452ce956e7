"""The runtime's archive of replaced plugin versions (`archive/NAME/STAMP-ID`).

An upgrade moves the replaced tree there inside its commit (`journal.Move.archive`), so the
previous version survives a crash as well as the new one. The archived tree keeps its
files, its manifest and its wheelhouse but not its virtualenv (a virtualenv cannot move,
and the runtime drops the ones no plugin uses): a rollback rebuilds it offline.
`$PLUGIN_ARCHIVE_KEEP` versions are kept per plugin (default 2; 0 keeps none).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from toolchain.core.layout import METADATA, Runtime
from toolchain.core.settings import archive_keep
from toolchain.installer import journal
from toolchain.runtime import registry

log = logging.getLogger(__name__)


def slot(rt: Runtime, name: str, tid: str) -> Path | None:
    """Where transaction `tid` archives the installed `name`; None when nothing is kept.

    Archived even when `$PLUGIN_ARCHIVE_KEEP` is 0: the health gate may swap it back
    (`gate`); `prune` drops it once the command is done.
    """
    current = rt.plugin(name)
    devlinked = registry.entry_kind(rt, name) is registry.EntryKind.DEVLINK
    if devlinked or not (current / METADATA).is_file():
        return None  # nothing installed, a devlink, or a broken entry
    return rt.archive / name / f"{time.time_ns():020d}-{tid}"


@dataclass(frozen=True)
class Archived:
    """One archived version of a plugin."""

    path: Path
    version: str
    release: str

    @property
    def label(self) -> str:
        """`VERSION-RELEASE`."""
        return f"{self.version}-{self.release}"


def versions(rt: Runtime, name: str) -> list[Archived]:
    """The archived versions of `name`, newest first; half-written entries are skipped."""
    folder = rt.archive / name
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir(), reverse=True):
        if path.name.startswith(".") or not (path / METADATA).is_file():
            continue
        meta = registry.read_json(path / METADATA)
        found.append(Archived(path, str(meta.get("version")), str(meta.get("release"))))
    return found


def prune(rt: Runtime, name: str) -> list[Path]:
    """Drop the archived versions of `name` beyond the newest `archive_keep()`; return them."""
    dropped = []
    for old in versions(rt, name)[archive_keep() :]:
        try:
            journal.drop(old.path)
        except OSError as exc:  # only space is lost: the next upgrade retries
            log.warning("%s: cannot remove this archived version: %s", old.path, exc)
            continue
        dropped.append(old.path)
    return dropped
