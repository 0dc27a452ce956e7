"""After a commit: the new versions pass their health checks, or the previous ones come back.

`after_commit` runs inside the commit's journal (`journal.commit(after=...)`, and again by
recovery when a crash interrupted it). Each plugin is finalized (override file, cron
jobs, daemons: running workers are swapped by `running.hotswap`) with its health gate.
A plugin that replaced a version and is not healthy gets that version back: the commit
has just moved it to the archive with its virtualenv still there, and it is exchanged
with the new tree in one atomic step; the new tree is dropped, and the plugin is
finalized again without restarting what did not change (its old workers never stopped).
The command then fails (`raise_if`) with the check's output.

A first install that is not healthy stays, with a warning: there is no version to go back
to, and an operator may still have to configure it (`plugins.status` shows it failing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolchain.core.errors import UnhealthyError
from toolchain.core.layout import METADATA, Runtime
from toolchain.installer import hooks, journal
from toolchain.runtime import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failed:
    """A plugin whose new version failed its checks, and the version that came back."""

    name: str
    new: str
    back: str
    check: str  # which check failed
    output: str  # what it said


def _label(path: Path) -> str:
    try:
        meta = registry.read_json(path / METADATA)
        return f"{meta['version']}-{meta['release']}"
    except (KeyError, TypeError, OSError, ValueError):
        return "?"


def _drop_cancelled(path: Path) -> None:
    """Drop a cancelled tree from the archive (hidden first: never offered to a rollback)."""
    hidden = path.with_name(f".{path.name}")
    journal.rename(path, hidden)
    journal.drop(hidden)


def swap_back(rt: Runtime, name: str, archived: Path) -> None:
    """Put the archived tree of `name` back in place and drop the one it replaced."""
    target = rt.plugin(name)
    if not journal.exchange(archived, target):
        # Two renames: the replaced tree goes where recovery restores it from.
        aside = journal.backup_path(rt, name, journal.new_id())
        journal.rename(target, aside)
        journal.rename(archived, target)
        journal.drop(aside)
        return
    journal.failpoint("swapped-back")
    _drop_cancelled(archived)


def _archived(move: journal.Move) -> Path | None:
    return move.archive if move.archive is not None and move.archive.is_dir() else None


def after_commit(
    rt: Runtime,
    moves: Sequence[journal.Move],
    warnings: Mapping[str, Sequence[str]] | None = None,
    staged: Sequence[list[int] | None] | None = None,
) -> list[Failed]:
    """Finalize every plugin a commit put in place, gated by health; return the failures.

    When one replaced a version and fails, every plugin of the commit that replaced one
    gets its previous version back (they were installed together: a requirer and its
    dependency come back together too). `staged`: the identity each move's new tree had
    (recovery passes the journal's), which tells that a crash interrupted a swap back.
    """
    failed: list[Failed] = []
    placed = [m for m in moves if m.staging is not None and registry.entry_exists(rt, m.name)]
    for index, move in enumerate(moves):
        archived = _archived(move)
        new_tree = staged[index] if staged is not None else None
        if move in placed and archived and new_tree and journal.identity(archived) == new_tree[-1:]:
            _drop_cancelled(archived)  # swapped back before a crash: the new tree is there
            placed.remove(move)
            hooks.finalize(rt, move.name, gate=False, restart=False)
    for move in placed:
        name, archived = move.name, _archived(move)
        check = hooks.finalize(
            rt, name, (warnings or {}).get(name, ()), gate=True, revertible=archived is not None
        )
        if check is None:
            continue
        new = _label(rt.plugin(name))
        if archived is None:
            said = " / ".join(check.output.splitlines()[-2:])
            log.warning("plugin %s %s is not healthy: %s: %s", name, new, check.name, said)
            continue
        failed.append(Failed(name, new, _label(archived), check.name, check.output))
    if failed:
        for move in reversed(placed):
            archived = _archived(move)
            if archived is not None:
                swap_back(rt, move.name, archived)
                hooks.finalize(rt, move.name, gate=False, restart=False)
    return failed


def raise_if(failed: Sequence[Failed]) -> None:
    """Fail the command when a new version was swapped back, with the first check's output."""
    if not failed:
        return
    first = failed[0]
    others = f" (and {len(failed) - 1} more plugin(s))" if len(failed) > 1 else ""
    lines = first.output.splitlines()
    raise UnhealthyError(
        f"plugin {first.name} {first.new} failed its health checks{others} ({first.check}: "
        f"{' / '.join(lines[-2:]) or 'no output'}); {first.back} is back in place. Fix the "
        "release, then upgrade again",
        [f"{first.check}: {line}" for line in lines],
    )
