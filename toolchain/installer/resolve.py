"""Plugin dependencies (`_requires`): what to install and in which order, or every problem.

Pure functions over candidates (name, version, release, requirements): the requested
plugins are taken as given, each dependency is kept when its installed version satisfies
every requirer, and otherwise the newest candidate of the repository that satisfies all
of them is picked (so the highest minimum wins). Dependencies of picked candidates are
resolved in turn until nothing changes. Missing plugins, unsatisfiable requirements,
downgrades and cycles are all collected and raised together in one `ResolutionError`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from toolchain.core.errors import ResolutionError

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version


class ActionKind(Enum):
    """Why the resolver installs a plugin."""

    INSTALL = "install"  # not installed yet
    UPGRADE = "upgrade"  # installed, but too old for a requirer
    REPLACE = "replace"  # installed, and asked for by the command


@dataclass(frozen=True)
class Candidate:
    """One version of a plugin: a `.plugin` file (`source`) or an installed plugin."""

    name: str
    version: str
    release: str = "1"
    requires: tuple[str, ...] = ()
    source: Path | None = None

    @property
    def label(self) -> str:
        """`NAME VERSION-RELEASE`, as messages name it."""
        return f"{self.name} {self.version}-{self.release}"

    def key(self) -> tuple[Version, int]:
        """What orders two versions of one plugin: version, then release."""
        from packaging.version import Version

        return Version(self.version), int(self.release)

    def requirements(self) -> list[tuple[str, str]]:
        """`(name, specifier)` of each requirement."""
        from toolchain.config import schema

        return schema.parse_requires(", ".join(self.requires))


@dataclass(frozen=True)
class Action:
    """One plugin to install: the candidate, what it replaces, and why it is installed."""

    candidate: Candidate
    kind: ActionKind
    previous: Candidate | None = None
    reasons: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        why = f" (required by {', '.join(self.reasons)})" if self.reasons else ""
        if self.previous is None:
            return f"install {self.candidate.label}{why}"
        return f"{self.kind.value} {self.previous.label} to {self.candidate.version}-" + (
            f"{self.candidate.release}{why}"
        )


def _spec(text: str) -> SpecifierSet:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text)


def satisfies(candidate: Candidate, specifier: str) -> bool:
    """Whether `candidate`'s version meets `specifier` (pre-releases included)."""
    from packaging.version import Version

    return _spec(specifier).contains(Version(candidate.version), prereleases=True)


def _requirement(requirer: Candidate, spec: str, dep: str) -> str:
    return f"{requirer.label} ({dep}{spec})" if spec else f"{requirer.label}"


def _by_name(available: Iterable[Candidate]) -> dict[str, list[Candidate]]:
    pool: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in available:
        pool[candidate.name].append(candidate)
    for versions in pool.values():
        versions.sort(key=Candidate.key, reverse=True)
    return pool


def _walk(
    requested: Mapping[str, Candidate],
    picks: Mapping[str, Candidate],
    installed: Mapping[str, Candidate],
) -> tuple[dict[str, Candidate], dict[str, list[tuple[Candidate, str]]]]:
    """Every plugin reached from the requested ones, and what each dependency must satisfy."""
    reached: dict[str, Candidate] = {}
    wanted: dict[str, list[tuple[Candidate, str]]] = defaultdict(list)
    stack = list(requested.values())[::-1]
    while stack:
        node = stack.pop()
        if node.name in reached:
            continue
        reached[node.name] = node
        for dep, spec in node.requirements():
            wanted[dep].append((node, spec))
            target = requested.get(dep) or picks.get(dep) or installed.get(dep)
            if target is not None and target.name not in reached:
                stack.append(target)
    return reached, wanted


def _installed_requirers(
    installed: Mapping[str, Candidate], replaced: Iterable[str]
) -> dict[str, list[tuple[Candidate, str]]]:
    """What the installed plugins that stay require: a replacement must satisfy them too."""
    leaving = set(replaced)
    out: dict[str, list[tuple[Candidate, str]]] = defaultdict(list)
    for plugin in installed.values():
        if plugin.name not in leaving:
            for dep, spec in plugin.requirements():
                out[dep].append((plugin, spec))
    return out


def _cycles(nodes: Mapping[str, Candidate], changing: set[str]) -> list[list[str]]:
    """Each dependency cycle through a plugin about to change, once, from its least name."""
    found: set[tuple[str, ...]] = set()
    edges = {
        name: sorted({dep for dep, _ in node.requirements() if dep in nodes})
        for name, node in nodes.items()
    }

    def visit(path: list[str]) -> None:
        for dep in edges[path[-1]]:
            if dep == path[0]:
                cycle = path
                start = cycle.index(min(cycle))
                found.add(tuple(cycle[start:] + cycle[:start]))
            elif dep not in path and dep > path[0]:
                visit([*path, dep])

    for name in sorted(nodes):
        visit([name])
    return [[*c, c[0]] for c in sorted(found) if changing & set(c)]


def _order(actions: Mapping[str, Action], nodes: Mapping[str, Candidate]) -> list[Action]:
    """Dependencies before their requirers; otherwise by name."""
    done: list[Action] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep, _ in sorted(nodes[name].requirements()):
            if dep in nodes:
                visit(dep)
        if name in actions:
            done.append(actions[name])

    for name in sorted(actions):
        visit(name)
    return done


def resolve(
    requested: Sequence[Candidate],
    installed: Mapping[str, Candidate],
    available: Iterable[Candidate] = (),
    *,
    devlinked: Iterable[str] = (),
) -> list[Action]:
    """The installs that `requested` needs, dependencies first; ResolutionError otherwise."""
    roots = {c.name: c for c in requested}
    pool = _by_name(available)
    linked = set(devlinked)
    picks: dict[str, Candidate] = {}
    problems: list[str] = []
    for _ in range(len(pool) + 2):  # each round pins at least one more name, or stops
        reached, wanted = _walk(roots, picks, installed)
        staying = _installed_requirers(installed, [*roots, *picks])
        problems, new_picks = [], {}
        for dep in sorted({*wanted, *roots}):
            requirers = wanted.get(dep, [])
            if dep in roots:  # given explicitly: the plugins that stay must accept it too
                requirers = requirers + [
                    r for r in staying.get(dep, []) if r[0].name not in reached
                ]
            specs = [s for _, s in requirers]
            if dep in roots:
                if not all(satisfies(roots[dep], s) for s in specs):
                    needs = ", ".join(_requirement(r, s, dep) for r, s in requirers)
                    problems.append(f"{roots[dep].label} is given, but {needs} require(s) {dep}")
                continue
            current = picks.get(dep) or installed.get(dep)
            if current is not None and all(satisfies(current, s) for s in specs):
                if dep in picks:
                    new_picks[dep] = current
                continue
            requirers = requirers + [r for r in staying.get(dep, []) if r[0].name not in reached]
            needs = ", ".join(_requirement(r, s, dep) for r, s in requirers)
            specs = [s for _, s in requirers]
            if dep in linked and current is not None:
                problems.append(
                    f"{current.label} is devlinked and does not satisfy {needs}; "
                    "update its source or unlink it"
                )
                continue
            fits = [c for c in pool.get(dep, []) if all(satisfies(c, s) for s in specs)]
            if not fits:
                offered = ", ".join(c.label for c in pool.get(dep, []))
                have = f"; installed: {current.label}" if current else ""
                if not pool.get(dep) and current is None:
                    problems.append(f"{dep} is missing: required by {needs}")
                else:
                    where = f"repository has {offered}" if offered else "not in the repository"
                    problems.append(f"no version of {dep} satisfies {needs} ({where}{have})")
                continue
            best = fits[0]
            if dep in installed and best.key() < installed[dep].key():
                problems.append(
                    f"{dep} would be downgraded from {installed[dep].version}-"
                    f"{installed[dep].release} to {best.version}-{best.release} for {needs}; "
                    "downgrades are refused"
                )
                continue
            new_picks[dep] = best
        if new_picks == picks:
            break
        picks = new_picks
    else:
        problems.append("the requirements do not settle; check them for conflicts")
    reached, wanted = _walk(roots, picks, installed)
    problems += [f"dependency cycle {' -> '.join(c)}" for c in _cycles(reached, {*roots, *picks})]
    if problems:
        raise ResolutionError(problems)
    actions: dict[str, Action] = {}
    for name, candidate in [*roots.items(), *picks.items()]:
        previous = installed.get(name)
        reasons = tuple(
            _requirement(r, s, name) for r, s in wanted.get(name, []) if name not in roots
        )
        kind = (
            ActionKind.INSTALL
            if previous is None
            else ActionKind.REPLACE
            if name in roots
            else ActionKind.UPGRADE
        )
        actions[name] = Action(candidate, kind, previous, reasons)
    return _order(actions, reached)
