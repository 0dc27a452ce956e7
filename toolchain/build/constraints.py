"""Freezing a plugin that requires other plugins: their pins are constraints.

The required plugins (`_requires`, followed transitively) are looked up in the runtime,
installed or devlinked, and else in a repository of `.plugin` files (`--repository`,
`$PLUGIN_REPOSITORY`: the newest version there that satisfies the requirement); one
found nowhere is a warning. The pins of each one, without hashes, become the constraint
file `plugin-NAME.txt` handed to pip-tools. A conflict is reported
by name: two required plugins pinning one package differently, or a package this plugin
needs at another version than a required plugin's pin.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.artifact import read
from toolchain.build import freeze
from toolchain.config import layers, schema
from toolchain.core import settings
from toolchain.core.errors import ArtifactError, FreezeError, ToolchainError
from toolchain.core.layout import ARTIFACT_SUFFIX, CONFIG_INI, REQ_OUT, PluginDir, Runtime
from toolchain.runtime import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Required:
    """A plugin this one requires, where its pins were found."""

    name: str
    version: str
    source: str  # "runtime" (installed or devlinked) or "repository"
    where: Path
    pins: dict[str, str]
    requires: list[tuple[str, str]]  # (name, specifier)


def _in_runtime(rt: Runtime, name: str) -> Required | None:
    home = rt.plugin(name)
    if not (home / CONFIG_INI).is_file():
        return None
    entry = registry.describe(rt, name)
    path = home / REQ_OUT
    pins = {p.name: p.version for p in freeze.read_pins(path)} if path.is_file() else {}
    return Required(name, entry.version, "runtime", home, pins, registry.requirements_of(home))


def _offer(path: Path, name: str) -> tuple[tuple[Any, int], Required] | None:
    """What the `.plugin` file `path` offers as plugin `name` (None: another plugin)."""
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    top, meta, _manifest = read.read_head(path)
    if top != name:
        return None
    version = Version(str(meta.get("version")))
    key = (version, int(str(meta.get("release", "1"))))
    requires = meta.get("requires") or []
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise ArtifactError(f"{path}: metadata 'requires' is not a list of strings")
    pins = meta.get("pins")
    if not isinstance(pins, dict):  # released before metadata carried them
        text = (read.read_member(path, REQ_OUT) or b"").decode("utf-8", "replace")
        pins = {p.name: p.version for p in freeze.parse_pins(text, path)}
    pins = {canonicalize_name(str(k)): str(v) for k, v in pins.items()}
    required = schema.parse_requires(", ".join(requires))
    return key, Required(name, str(meta["version"]), "repository", path, pins, required)


def _in_repository(directory: Path, name: str, spec: str) -> Required | None:
    """The newest `.plugin` of `name` in `directory` that satisfies `spec`; a file that
    cannot be read is skipped with a warning naming it."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion

    wanted = SpecifierSet(spec)
    best: tuple[tuple[Any, int], Required] | None = None
    for path in sorted(directory.glob(f"{name}-*{ARTIFACT_SUFFIX}")):
        try:
            offer = _offer(path, name)
        except (ToolchainError, InvalidVersion, ValueError, KeyError) as exc:
            log.warning("%s: skipped: %s", path, exc)
            continue
        if offer is None or not wanted.contains(offer[0][0], prereleases=True):
            continue
        if best is None or offer[0] > best[0]:
            best = offer
    return best[1] if best else None


def required_plugins(
    plugin: PluginDir, rt: Runtime, repository: Path | None = None
) -> tuple[dict[str, Required], list[str]]:
    """Every plugin `plugin` requires, transitively, from the runtime or else `repository`;
    and the names found in neither."""
    own = layers.load(plugin.config)
    pending = list(schema.parse_requires(own.general["_requires"]))
    found: dict[str, Required] = {}
    missing: list[str] = []
    while pending:
        name, spec = pending.pop(0)
        if name in found or name == own.name or name in missing:
            continue
        got = _in_runtime(rt, name)
        if got is None and repository is not None and repository.is_dir():
            got = _in_repository(repository, name, spec)
        if got is None:
            missing.append(name)
            continue
        found[name] = got
        pending += got.requires
    return dict(sorted(found.items())), missing


def plugin_pins(found: dict[str, Required]) -> dict[str, dict[str, str]]:
    """`{plugin: {package: version}}` of the required plugins."""
    return {name: dict(req.pins) for name, req in found.items()}


def cross_conflicts(pins: dict[str, dict[str, str]]) -> list[str]:
    """Packages that two required plugins pin at different versions, each named once."""
    seen: dict[str, tuple[str, str]] = {}
    problems = []
    for plugin, packages in pins.items():
        for package, version in sorted(packages.items()):
            first = seen.setdefault(package, (plugin, version))
            if first[1] != version:
                problems.append(
                    f"plugin {first[0]} pins {package}=={first[1]}, "
                    f"plugin {plugin} pins {package}=={version}"
                )
    return problems


def _write(folder: Path, pins: dict[str, dict[str, str]]) -> list[Path]:
    files = []
    for plugin, packages in pins.items():
        path = folder / f"plugin-{plugin}.txt"
        path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(packages.items())), "utf-8")
        files.append(path)
    return files


def _explain(plugin: PluginDir, pins: dict[str, dict[str, str]], error: FreezeError) -> str:
    """Name the plugin pins that the unconstrained resolution disagrees with."""
    try:
        free = {p.name: p.version for p in freeze.compile_pins(plugin)}
    except FreezeError:
        return str(error)  # it does not resolve even alone: not a constraint conflict
    name = layers.load(plugin.config).name
    clashes = [
        f"plugin {other} pins {package}=={version} but {name} resolves to {free[package]}"
        for other, packages in pins.items()
        for package, version in sorted(packages.items())
        if package in free and free[package] != version
    ]
    if not clashes:
        listed = ", ".join(f"plugin {other}" for other in pins)
        return f"{error} (with the pins of {listed} as constraints)"
    return f"{plugin.req_in}: conflicts with required plugins: {'; '.join(clashes)}"


def repository_dir(given: Path | None = None) -> Path | None:
    """The repository of `.plugin` files: `--repository`, else `$PLUGIN_REPOSITORY`."""
    if given is not None:
        return given
    value = settings.repository()
    return Path(value) if value else None


def warn_missing(missing: list[str], repository: Path | None) -> None:
    """One warning per required plugin whose pins a freeze goes without."""
    where = f"not in {repository}" if repository else "and no PLUGIN_REPOSITORY is set"
    for name in missing:
        log.warning("frozen without the pins of %s: not installed, %s", name, where)


def freeze_with_plugins(
    plugin: PluginDir, rt: Runtime, *, force: bool = False, repository: Path | None = None
) -> bool:
    """`freeze.freeze` with the pins of the required plugins as constraints.

    A required plugin found neither in the runtime nor in the repository is a warning,
    so that a CI job can always release.
    """
    repository = repository_dir(repository)
    if repository is not None and not repository.is_dir():
        raise FreezeError(f"{repository}: PLUGIN_REPOSITORY is not a directory")
    found, missing = required_plugins(plugin, rt, repository)
    warn_missing(missing, repository)
    if not found:
        return freeze.freeze(plugin, force=force)
    pins = plugin_pins(found)
    clashes = cross_conflicts(pins)
    if clashes:
        raise FreezeError(f"{plugin.config}: required plugins disagree: {'; '.join(clashes)}")
    with tempfile.TemporaryDirectory(prefix=".constraints-", dir=plugin.req_in.parent) as tmp:
        files = _write(Path(tmp), pins)
        try:
            return freeze.freeze(plugin, force=force, constraints=files)
        except FreezeError as exc:
            raise FreezeError(_explain(plugin, pins, exc)) from None
