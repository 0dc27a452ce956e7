"""Plugins as the resolver sees them: `.plugin` files, a repository directory of them, the
installed plugins, and the content hash that tells an artifact from an installed copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolchain.artifact import read
from toolchain.config import layers, schema
from toolchain.core.errors import ArtifactError, ToolchainError, UsageError
from toolchain.core.layout import ARTIFACT_SUFFIX, CONFIG_INI, MANIFEST, METADATA, Runtime
from toolchain.installer.resolve import Action, Candidate, resolve
from toolchain.runtime import registry

log = logging.getLogger(__name__)


def _requires(value: Any, where: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArtifactError(f"{where}: metadata 'requires' is not a list of strings")
    try:
        schema.parse_requires(", ".join(value))
    except ToolchainError as exc:
        raise ArtifactError(f"{where}: metadata 'requires': {exc}") from None
    return tuple(value)


def _candidate(meta: dict[str, Any], name: str, where: Path, source: Path | None) -> Candidate:
    version, release = meta.get("version"), meta.get("release")
    if not isinstance(version, str) or not isinstance(release, str):
        raise ArtifactError(f"{where}: metadata lacks version or release; rebuild the artifact")
    candidate = Candidate(name, version, release, _requires(meta.get("requires"), where), source)
    try:
        if len(version) > 128 or len(release) > 9:
            raise ValueError(version)
        candidate.key()
    except ValueError:  # InvalidVersion is one; so is a number Python will not convert
        shown = f"{version}-{release}"
        shown = shown if len(shown) <= 60 else f"{shown[:50]}... ({len(shown)} characters)"
        raise ArtifactError(f"{where}: version {shown} is not PEP 440") from None
    return candidate


def file_candidate(path: Path, name: str | None = None) -> Candidate:
    """The candidate a `.plugin` file offers (under `name` when it is installed renamed)."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    top, meta, _manifest = read.read_head(path)
    return _candidate(meta, name or top, path, path)


def read_directory(directory: Path) -> list[Candidate]:
    """Every `.plugin` file of a repository directory; ArtifactError names each bad one."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory of {ARTIFACT_SUFFIX} files")
    found, bad = [], []
    for path in sorted(directory.glob(f"*{ARTIFACT_SUFFIX}")):
        try:
            found.append(file_candidate(path))
        except ArtifactError as exc:
            bad.append(str(exc))
    if bad:
        raise ArtifactError(f"{directory}: unreadable plugin files: {'; '.join(bad)}")
    return found


def installed(rt: Runtime) -> tuple[dict[str, Candidate], set[str]]:
    """The installed plugins as candidates, and the names of the devlinked ones."""
    out: dict[str, Candidate] = {}
    linked: set[str] = set()
    names = sorted(p.name for p in rt.plugins.iterdir()) if rt.plugins.is_dir() else []
    for name in names:
        home = rt.plugin(name)
        kind = registry.entry_kind(rt, name)
        if kind is registry.EntryKind.DEBRIS:
            continue
        if kind is registry.EntryKind.DEVLINK:
            linked.add(name)
        try:  # a damaged entry must not block the commands that replace or remove it
            entry = registry.describe(rt, name)
            if entry.dev_link is None:
                out[name] = tree_candidate(home, name)
                continue
            general = layers.load(home / CONFIG_INI).general
            requires = tuple(f"{n}{s}" for n, s in schema.parse_requires(general["_requires"]))
            out[name] = Candidate(name, entry.version, entry.release, requires)
        except ToolchainError as exc:
            log.warning("plugin %s: its requirements are unknown: %s", name, exc)
    return out, linked


def tree_candidate(home: Path, name: str) -> Candidate:
    """The candidate an installed (or archived) plugin tree is, from its metadata."""
    return _candidate(registry.read_json(home / METADATA), name, home / METADATA, None)


def requirers(rt: Runtime, name: str) -> list[str]:
    """The installed plugins that require `name`, each with its requirement."""
    found = []
    for other in installed(rt)[0].values():
        for dep, spec in other.requirements():
            if dep == name and other.name != name:
                found.append(f"{other.label} ({dep}{spec})" if spec else other.label)
    return found


def plan(
    rt: Runtime,
    files: Sequence[Path],
    repository: Path | None = None,
    new_name: str | None = None,
) -> list[Action]:
    """What installing `files` takes, dependencies from `repository` included, in order."""
    requested = [file_candidate(Path(f), new_name) for f in files]
    names = [c.name for c in requested]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"plugin {', '.join(twice)} is given twice")
    available = read_directory(repository) if repository is not None else []
    current, linked = installed(rt)
    return resolve(requested, current, available, devlinked=linked)


def content_hash(manifest: dict[str, Any]) -> str:
    """sha256 of what a plugin holds: every file, link and directory but its metadata.

    The metadata is left out because it records the build host and date: two builds of
    the same tree have the same content hash.
    """
    files = [f for f in manifest.get("files", []) if f.get("path") != METADATA]
    links, dirs = manifest.get("symlinks", []), manifest.get("dirs", [])
    doc = {"files": files, "symlinks": links, "dirs": dirs}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def installed_hash(rt: Runtime, name: str) -> str:
    """The content hash of the installed plugin `name` (from the manifest it was installed with)."""
    return content_hash(registry.read_json(rt.plugin(name) / MANIFEST))


def file_hash(path: Path) -> str:
    """The content hash of a `.plugin` file."""
    return content_hash(read.read_head(path)[2])
