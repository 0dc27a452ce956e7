"""The runtime's entries as every side reads them: what each is, its description, the
installed names, the virtualenv an entry uses. Nothing here changes an entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from toolchain.core.errors import InstallError, NotInstalled, ToolchainError
from toolchain.core.layout import CONFIG_INI, METADATA, VENV, Runtime


class EntryKind(Enum):
    """What an entry of the runtime's `plugins/` directory is."""

    INSTALLED = "installed"  # unpacked from a .plugin file, with a virtualenv of its own
    DEVLINK = "devlink"  # a link to a plugin's source directory (development mode)
    DEBRIS = "debris"  # left by an interrupted command (staging, backup, journal)


def entry_kind(runtime: Runtime, name: str) -> EntryKind | None:
    """What the entry `name` is; None when there is none."""
    path = runtime.plugin(name)
    if name.startswith("."):
        return EntryKind.DEBRIS
    if path.is_symlink():
        return EntryKind.DEVLINK
    return EntryKind.INSTALLED if path.exists() else None


def ensure(runtime: Runtime) -> Runtime:
    """Create the runtime tree on first use."""
    for path in (
        runtime.plugins,
        runtime.overrides,
        runtime.logs,
        runtime.tmp,
        runtime.cache,
        runtime.venvs,
    ):
        path.mkdir(parents=True, exist_ok=True)
    return runtime


def entry_exists(runtime: Runtime, name: str) -> bool:
    """Whether the runtime has an entry (directory or devlink) named `name`."""
    path = runtime.plugin(name)
    return path.exists() or path.is_symlink()


def venv_of(plugin_dir: Path) -> Path | None:
    """The virtualenv an installed plugin's `local` link points to (None for a devlink)."""
    link = plugin_dir / VENV
    if plugin_dir.is_symlink() or not link.is_symlink():
        return None
    return Path(os.readlink(link))


@dataclass(frozen=True)
class Installed:
    """One runtime entry as `plugins.list` shows it."""

    name: str
    home: Path
    version: str
    release: str
    dev_link: Path | None

    def as_dict(self) -> dict[str, str | None]:
        """The JSON form of this entry."""
        return {
            "name": self.name,
            "version": self.version,
            "release": self.release,
            "home": str(self.home),
            "dev_link": str(self.dev_link) if self.dev_link else None,
        }


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file written by the toolchain; InstallError when damaged."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InstallError(f"{path}: unreadable ({exc}); reinstall the plugin") from None
    if not isinstance(doc, dict):
        raise InstallError(f"{path}: not a JSON object; reinstall the plugin")
    return doc


def describe(runtime: Runtime, name: str) -> Installed:
    """The installed plugin `name`; NotInstalled when there is none."""
    home = runtime.plugin(name)
    if not (home / CONFIG_INI).is_file():
        raise NotInstalled(f"plugin {name!r} is not installed in {runtime.home}")
    if entry_kind(runtime, name) is EntryKind.DEVLINK:
        from toolchain.config import layers

        general = layers.load(home / CONFIG_INI).general
        return Installed(
            name, home, general["_version"], general["_release"], Path(os.readlink(home))
        )
    meta = read_json(home / METADATA)
    return Installed(name, home, str(meta.get("version")), str(meta.get("release")), None)


def requirements_of(home: Path) -> list[tuple[str, str]]:
    """`(name, specifier)` of each plugin an installed (metadata) or devlinked (config.ini)
    plugin requires."""
    from toolchain.config import layers, schema

    if home.is_symlink() or not (home / METADATA).is_file():
        return schema.parse_requires(layers.load(home / CONFIG_INI).general["_requires"])
    requires = read_json(home / METADATA).get("requires") or []
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise InstallError(f"{home / METADATA}: 'requires' is not a list; reinstall the plugin")
    return schema.parse_requires(", ".join(requires))


def requires_of(home: Path) -> list[str]:
    """The names of the plugins an installed or devlinked plugin requires."""
    return [name for name, _ in requirements_of(home)]


def inherited(
    runtime: Runtime, name: str, requires: str, staged: Mapping[str, Path] | None = None
) -> list[tuple[str, Path]]:
    """The plugins `name` inherits (its `_requires` value `requires`, then theirs,
    transitively), nearest first, each once; a missing one is listed too (its directory
    does not exist), so that installing it later is noticed. `staged` gives the trees an
    install in progress is about to swap in, which count instead of the installed ones."""
    from toolchain.config import schema

    pending = [dep for dep, _ in schema.parse_requires(requires)]
    seen = {name}
    found: list[tuple[str, Path]] = []
    while pending:
        dep = pending.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        home = (staged or {}).get(dep) or runtime.plugin(dep)
        found.append((dep, home))
        if (home / CONFIG_INI).is_file():
            try:
                pending += requires_of(home)
            except ToolchainError:
                continue  # a damaged entry: the plugins it requires are unknown
    return found


def installed_names(runtime: Runtime) -> list[str]:
    """Names of the plugins installed or devlinked in the runtime, sorted (no debris)."""
    if not runtime.plugins.is_dir():
        return []
    return [
        entry.name
        for entry in sorted(runtime.plugins.iterdir())
        if not entry.name.startswith(".") and (entry / CONFIG_INI).is_file()
    ]


def installed(runtime: Runtime) -> list[Installed]:
    """Every plugin installed or devlinked in the runtime, by name."""
    return [describe(runtime, name) for name in installed_names(runtime)]
