"""Pins that must agree: a plugin and every plugin it inherits (its `_requires`, transitively).

A plugin's commands import the packages of the plugins it requires (the inherited env);
two versions of one package in that env is a plugin that breaks at run time. So a
command that brings new pins (an install, an upgrade, a rollback) is refused when, after
it, some plugin pins a package at another version than a plugin it inherits; `--force`
turns the refusal into a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from toolchain.artifact import read
from toolchain.config import schema
from toolchain.core import pins as core_pins
from toolchain.core.errors import InstallError, ToolchainError
from toolchain.core.layout import METADATA, REQ_OUT, Runtime
from toolchain.runtime import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pinned:
    """A plugin as this check sees it: its pins and the plugins it requires."""

    name: str
    pins: dict[str, str]
    requires: list[str]


def parse(text: str) -> dict[str, str]:
    """`{package: version}` of a frozen requirements file; other lines are skipped (they
    are checked where the file builds a venv)."""
    return {pin.name: pin.version for pin in core_pins.parse(text, strict=False)}


def _requires(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return []
    return [n for n, _ in schema.parse_requires(", ".join(map(str, value)))]


def of_file(path: Path, name: str) -> Pinned:
    """The pins of a `.plugin` file: from its metadata, else its `requirements3.txt`."""
    _top, meta, _manifest = read.read_head(path)
    pins = meta.get("pins")
    if not isinstance(pins, dict):
        pins = parse((read.read_member(path, REQ_OUT) or b"").decode("utf-8", "replace"))
    from packaging.utils import canonicalize_name

    pins = {canonicalize_name(str(k)): str(v) for k, v in pins.items()}
    return Pinned(name, pins, _requires(meta.get("requires")))


def of_tree(home: Path, name: str) -> Pinned:
    """The pins of an installed, archived or devlinked plugin tree."""
    path = home / REQ_OUT
    pins = parse(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if (home / METADATA).is_file() and not home.is_symlink():
        requires = _requires(registry.read_json(home / METADATA).get("requires"))
    else:
        requires = registry.requires_of(home)
    return Pinned(name, pins, requires)


def installed(rt: Runtime) -> dict[str, Pinned]:
    """Every installed or devlinked plugin whose pins can be read."""
    found = {}
    for name in registry.installed_names(rt):
        try:
            found[name] = of_tree(rt.plugin(name), name)
        except (ToolchainError, OSError, ValueError) as exc:
            log.warning("plugin %s: its pins are unknown: %s", name, exc)
    return found


def _inherits(world: Mapping[str, Pinned], name: str) -> list[str]:
    """The plugins `name` inherits in `world`, nearest first."""
    pending, seen, out = list(world[name].requires), {name}, []
    while pending:
        dep = pending.pop(0)
        if dep in seen or dep not in world:
            continue
        seen.add(dep)
        out.append(dep)
        pending += world[dep].requires
    return out


def conflicts(rt: Runtime, incoming: Mapping[str, Pinned]) -> list[str]:
    """Each package pinned differently by a plugin and one it inherits, once `incoming`
    replaces what is installed; only pairs that involve an incoming plugin."""
    world = installed(rt) | dict(incoming)
    problems = []
    for name in sorted(world):
        for dep in _inherits(world, name):
            if name not in incoming and dep not in incoming:
                continue
            mine, theirs = world[name].pins, world[dep].pins
            for package in sorted(set(mine) & set(theirs)):
                if not same_version(mine[package], theirs[package]):
                    problems.append(
                        f"plugin {name} pins {package}=={mine[package]} but plugin {dep}, "
                        f"which it inherits, pins {package}=={theirs[package]}"
                    )
    return problems


def same_version(one: str, other: str) -> bool:
    """Whether two pinned versions are the same release (`1.0` is `1.0.0`)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(one) == Version(other)
    except InvalidVersion:
        return one == other


def check(rt: Runtime, incoming: Mapping[str, Pinned], *, force: bool, what: str) -> None:
    """Refuse `what` (InstallError) on a conflict; with `force`, warn about each instead."""
    problems = conflicts(rt, incoming)
    if not problems:
        return
    if force:
        for problem in problems:
            log.warning("%s anyway (--force): %s", what, problem)
        return
    raise InstallError(f"{what} refused: {'; '.join(problems)}; use --force to do it anyway")
