"""The plugin env: the variables a plugin's commands run with, and their cache.

`plugin_wrapper` runs from cron, so the merged configuration is cached as JSON in the
runtime's cache directory, keyed by the identity (inode, mtime, size) of every config
file that feeds it; a hit reads one small file and imports neither configparser nor
jinja2. Values that are Jinja2 templates are rendered at each run, against the
environment of that run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolchain.core.errors import NotInstalled
from toolchain.core.layout import CONFIG_INI, VENV, Runtime
from toolchain.core.settings import config_name, module_name
from toolchain.runtime import envcache


def config_files(runtime: Runtime, name: str, plugin_dir: Path) -> list[Path]:
    """The configuration layers of a plugin, lowest first: plugin, runtime, provisioning."""
    return [Path(f) for f in envcache.config_files(str(runtime.home), name, str(plugin_dir))]


def _cache_key(runtime: Runtime, name: str, plugin_dir: Path) -> list[Any]:
    return envcache.cache_key(str(runtime.home), name, str(plugin_dir))


def cache_file(runtime: Runtime, name: str) -> Path:
    """Where the merged configuration of `name` is cached."""
    return Path(envcache.cache_path(str(runtime.home), name))


def drop_cache(runtime: Runtime, name: str) -> None:
    """Forget the cached configuration of `name` (JSON and its marshal copy)."""
    home = str(runtime.home)
    for path in (envcache.cache_path(home, name), envcache.fast_path(home, name)):
        Path(path).unlink(missing_ok=True)


def _templated(merged: Mapping[str, Mapping[str, str]]) -> bool:
    return any("{{" in v or "{%" in v for keys in merged.values() for v in keys.values())


def merged_config(runtime: Runtime, name: str, plugin_dir: Path) -> dict[str, dict[str, str]]:
    """Merge the plugin's config.ini with the runtime and provisioning overrides."""
    from toolchain.config import layers, schema

    found = []
    for index, path in enumerate(config_files(runtime, name, plugin_dir)):
        if index and not path.is_file():
            continue
        raw = layers.read_raw(path)
        schema.validate(raw, path, override=index > 0)
        found.append(raw)
    return layers.merge(found, config_name())


def _load_cache(path: Path, key: list[Any]) -> dict[str, Any] | None:
    return envcache.load(str(path), key)


def _store_cache(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        with envcache.open_private(str(tmp), binary=False) as handle:
            json.dump(doc, handle)
        os.replace(tmp, path)
    except OSError:
        # A read-only or foreign runtime: run uncached rather than fail the command.
        try:
            tmp.unlink()
        except OSError:
            pass


def site_packages(plugin_dir: Path) -> list[str]:
    """The site-packages directories of a plugin's virtualenv."""
    return sorted(str(p) for p in (plugin_dir / VENV / "lib").glob("python*/site-packages"))


def inherited_layers(
    runtime: Runtime,
    name: str,
    merged: Mapping[str, Mapping[str, str]],
    staged: Mapping[str, Path] | None = None,
) -> list[list[Any]]:
    """`[directory, identity, site-packages]` of every plugin `name` inherits, nearest
    first; a missing one has no identity (and brings nothing until it is installed)."""
    from toolchain.runtime import registry

    requires = merged.get("general", {}).get("_requires", "")
    layers = []
    for _dep, home in registry.inherited(runtime, name, requires, staged):
        identity = envcache.dep_identity(str(home))
        sites = site_packages(home) if identity is not None else []
        layers.append([str(home), identity, sites])
    return layers


def _computed(
    runtime: Runtime,
    name: str,
    plugin_dir: Path,
    staged: Mapping[str, Path] | None = None,
    previous: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The merged configuration, its exported variables and the inherited layers;
    `previous`: the exported variables of the last computation (`hostnames.addresses`)."""
    merged = merged_config(runtime, name, plugin_dir)
    deps = inherited_layers(runtime, name, merged, staged)
    doc: dict[str, Any] = {"merged": merged, "exported": None, "deps": deps, "own_sites": []}
    if deps:
        doc["own_sites"] = site_packages(plugin_dir)
        doc["own_venv"] = [str(plugin_dir), envcache.venv_identity(str(plugin_dir))]
    if not _templated(merged):
        from toolchain.config.layers import exported

        variables = exported(merged, module_name())
        doc["exported"] = _with_addresses(name, merged, variables, doc, previous)
    return doc


def _with_addresses(
    name: str,
    merged: Mapping[str, Mapping[str, str]],
    exported: dict[str, str],
    doc: dict[str, Any],
    previous: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`exported` with the addresses of its `*_hostname(s)` keys; a document holding any
    expires (`hostnames.TTL`), so that the cache does not keep them for ever."""
    from toolchain.runtime import hostnames

    found = hostnames.addresses(name, merged, module_name(), previous=previous)
    if found:
        import time

        doc["expires"] = time.time() + hostnames.TTL
    return {**exported, **found}


def _settings(runtime: Runtime, name: str, plugin_dir: Path, fresh: bool = False) -> dict[str, Any]:
    """The cached (or freshly computed) merged configuration and its exported variables;
    `fresh` computes them without reading the cache, and caches the result."""
    key = _cache_key(runtime, name, plugin_dir)
    path = cache_file(runtime, name)
    cached = _load_cache(path, key)
    doc = cached if cached is not None and not fresh and envcache.unexpired(cached) else None
    home = str(runtime.home)
    if doc is not None and envcache.load_fast(envcache.fast_path(home, name), key) is None:
        envcache.store_fast(envcache.fast_path(home, name), doc)
    if doc is None:
        last = cached.get("exported") if cached else None  # its addresses, if DNS fails
        previous = last if isinstance(last, dict) else None
        doc = {"key": key, **_computed(runtime, name, plugin_dir, previous=previous)}
        _store_cache(path, doc)
        envcache.store_fast(envcache.fast_path(home, name), doc)
    return doc


def variables(
    runtime: Runtime,
    name: str,
    plugin_dir: Path,
    base: Mapping[str, str] | None = None,
    staged: Mapping[str, Path] | None = None,
    fresh: bool = False,
) -> dict[str, str]:
    """The complete environment for a command of plugin `name` living in `plugin_dir`.

    `staged`: the trees an install in progress is about to swap in (its postinstall
    inherits them rather than what is installed); such an env is not cached. `fresh`:
    computed again, whatever the cache holds.
    """
    env = dict(os.environ if base is None else base)
    if staged:
        doc = _computed(runtime, name, plugin_dir, staged)
    else:
        doc = _settings(runtime, name, plugin_dir, fresh)
    merged: dict[str, dict[str, str]] = doc["merged"]
    exported: dict[str, str] | None = doc["exported"]
    if exported is None:
        from toolchain.config import layers

        prefix = f"{module_name()}_CURRENT_PLUGIN".upper().replace("-", "_")
        env[f"{prefix}_NAME"] = name  # templates may use them
        env[f"{prefix}_DIR"] = str(plugin_dir)
        rendered = layers.render(merged, env, plugin_dir / CONFIG_INI)
        exported = _with_addresses(name, rendered, layers.exported(rendered, module_name()), {})
    deps, own_sites = doc.get("deps") or [], doc.get("own_sites") or []
    return envcache.compose(
        env, str(runtime.home), name, str(plugin_dir), merged, exported, deps, own_sites
    )


# What `plugin_wrapper --empty` keeps of the caller's environment: who runs the command
# (as cron and `env -i` logins set it); PATH is the system's, after the plugin's own.
KEPT_WHEN_EMPTY = ("HOME", "USER", "LOGNAME")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def empty_base() -> dict[str, str]:
    """The environment `plugin_wrapper --empty` starts from: the user, the system PATH and
    the toolchain's own settings (where the runtime is), nothing else."""
    base = {k: v for k, v in os.environ.items() if k in KEPT_WHEN_EMPTY or k.startswith("PLUGIN_")}
    base["PATH"] = SYSTEM_PATH
    return base


def require_venv(name: str, plugin_dir: Path) -> None:
    """Refuse to run a plugin whose virtualenv is missing: its commands would silently get
    whichever python comes next on PATH (the toolchain's, the system's)."""
    if (plugin_dir / VENV / "bin").is_dir():
        return
    if plugin_dir.is_symlink() or not (plugin_dir / VENV).is_symlink():  # a source tree
        source = plugin_dir.resolve()
        raise NotInstalled(
            f"plugin {name}: {source} has no virtualenv ({VENV}/) yet: run make in {source}"
        )
    raise NotInstalled(
        f"plugin {name}: its virtualenv ({plugin_dir / VENV}) is missing: reinstall the plugin"
    )


def working_dir() -> Path:
    """Where the user stands, as the shell names it: `$PWD` when it is this directory, so
    that a directory reached through a link (`local/`, a plugin's virtualenv) is seen
    inside the plugin, not at the link's target."""
    logical = os.environ.get("PWD", "")
    try:
        if logical.startswith("/") and os.path.samefile(logical, "."):
            return Path(logical)
    except OSError:
        pass
    return Path.cwd()


def _is_plugin_config(path: Path) -> bool:
    """Whether `path` is a plugin's config.ini (a `[general]` section naming it), and not
    another tool's file of the same name in a subdirectory."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError, configparser.Error):
        return True  # let the plugin's own reading say what is wrong with it
    return parser.has_option("general", "name")


def find_plugin_dir(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding a plugin's `config.ini`."""
    for directory in (start, *start.parents):
        config = directory / CONFIG_INI
        if config.is_file() and _is_plugin_config(config):
            return directory
    return None
