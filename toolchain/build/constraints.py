"""Freezing a plugin that requires other plugins: their pins are constraints.

The required plugins (`_requires`, followed transitively) are looked up in the runtime,
installed or devlinked; the pins of each one's `requirements3.txt`, without hashes,
become the constraint file `plugin-NAME.txt` handed to pip-tools. A conflict is reported
by name: two required plugins pinning one package differently, or a package this plugin
needs at another version than a required plugin's pin.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from toolchain.build import freeze
from toolchain.config import layers, schema
from toolchain.core.errors import FreezeError
from toolchain.core.layout import CONFIG_INI, REQ_OUT, PluginDir, Runtime
from toolchain.runtime import registry


def required_plugins(plugin: PluginDir, rt: Runtime) -> dict[str, Path]:
    """The runtime directory of every plugin `plugin` requires, transitively, by name."""
    own = layers.load(plugin.config)
    pending = [(name, own.name) for name, _ in schema.parse_requires(own.general["_requires"])]
    found: dict[str, Path] = {}
    missing: list[str] = []
    while pending:
        name, requirer = pending.pop(0)
        if name in found or name == own.name:
            continue
        home = rt.plugin(name)
        if not (home / CONFIG_INI).is_file():
            missing.append(f"{name} (required by {requirer})")
            continue
        found[name] = home
        pending += [(dep, name) for dep in registry.requires_of(home)]
    if missing:
        raise FreezeError(
            f"{plugin.config}: required plugin(s) {', '.join(missing)} not installed or "
            f"devlinked in {rt.home}; their pins are the constraints of this freeze, "
            "install them (plugins.install or make develop) first"
        )
    return dict(sorted(found.items()))


def plugin_pins(found: dict[str, Path]) -> dict[str, dict[str, str]]:
    """`{plugin: {package: version}}` from each plugin's `requirements3.txt` (none: {})."""
    pins: dict[str, dict[str, str]] = {}
    for name, home in found.items():
        path = home / REQ_OUT
        pins[name] = {p.name: p.version for p in freeze.read_pins(path)} if path.is_file() else {}
    return pins


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


def freeze_with_plugins(plugin: PluginDir, rt: Runtime, *, force: bool = False) -> bool:
    """`freeze.freeze` with the pins of the required plugins as constraints."""
    found = required_plugins(plugin, rt)
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
