"""`plugins.provision DIR`: make the installed plugins match a directory of `.plugin` files.

Each plugin of DIR (its newest file when there are several) is installed when absent,
replaced when its content hash differs from the installed copy's, whatever the versions
say, and left alone when identical. Devlinked plugins are never touched, plugins not in
DIR are kept, and OP override files are kept as by any upgrade. Dependencies come from
DIR too, and everything is installed in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from toolchain.core.layout import Runtime
from toolchain.installer import install, repository, resolve
from toolchain.runtime import registry


class Verdict(Enum):
    """What provisioning does with one plugin."""

    INSTALL = "install"  # offered and not installed
    UPGRADE = "upgrade"  # offered with another content than the installed one
    UNCHANGED = "unchanged"  # offered with the installed content
    DEVLINKED = "devlinked"  # devlinked: never touched
    KEPT = "kept"  # installed and not offered: left alone


@dataclass(frozen=True)
class Decision:
    """What provisioning does (or did) with one plugin, and why."""

    name: str
    action: Verdict
    detail: str

    def __str__(self) -> str:
        return f"{self.action.value} {self.name}: {self.detail}"

    @property
    def changes(self) -> bool:
        """Whether this decision installs something."""
        return self.action in (Verdict.INSTALL, Verdict.UPGRADE)


def _decide(rt: Runtime, directory: Path) -> tuple[list[Decision], list[resolve.Action], set[str]]:
    offered = repository.read_directory(directory)
    newest: dict[str, resolve.Candidate] = {}
    for candidate in offered:
        if candidate.name not in newest or candidate.key() > newest[candidate.name].key():
            newest[candidate.name] = candidate
    current, linked = repository.installed(rt)
    decisions, roots, changed = [], [], set()
    for name, candidate in sorted(newest.items()):
        if name in linked:
            link = rt.plugin(name).readlink()
            detail = f"devlinked to {link}, {candidate.label} left aside"
            decisions.append(Decision(name, Verdict.DEVLINKED, detail))
        elif name not in current:
            roots.append(candidate)
            if registry.entry_exists(rt, name):  # damaged: whatever it holds differs
                changed.add(name)
        else:
            assert candidate.source is not None
            if repository.installed_hash(rt, name) == repository.file_hash(candidate.source):
                detail = f"{current[name].label} is identical to {candidate.source.name}"
                decisions.append(Decision(name, Verdict.UNCHANGED, detail))
            else:
                roots.append(candidate)
                changed.add(name)
    for name in sorted(set(current) - set(newest)):
        decisions.append(
            Decision(name, Verdict.KEPT, f"{current[name].label} is not in {directory}")
        )
    actions = resolve.resolve(roots, current, offered, devlinked=linked)
    for action in actions:
        new = action.candidate
        if action.previous is None:
            why = f" (required by {', '.join(action.reasons)})" if action.reasons else ""
            decisions.append(Decision(new.name, Verdict.INSTALL, f"{new.label}{why}"))
        else:
            why = "content differs" if new.name in changed else ", ".join(action.reasons)
            detail = f"{action.previous.label} -> {new.version}-{new.release} ({why})"
            decisions.append(Decision(new.name, Verdict.UPGRADE, detail))
    return sorted(decisions, key=lambda d: d.name), actions, changed


def provision(rt: Runtime, directory: Path, *, dry_run: bool = False) -> list[Decision]:
    """Install or replace what DIR holds differently from the runtime; return each decision."""
    decisions, actions, changed = _decide(rt, directory)
    if dry_run or not actions:
        return decisions
    steps = []
    for action in actions:
        source = action.candidate.source
        assert source is not None
        if action.candidate.name in changed:
            strategy = install.Strategy.FORCE  # the content decides, not the version
        elif action.previous is None:
            strategy = install.Strategy.DEFAULT
        else:
            strategy = install.Strategy.UPGRADE
        steps.append(install.Step(source, strategy))
    install.transaction(rt, steps)
    return decisions
