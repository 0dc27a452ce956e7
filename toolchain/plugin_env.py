"""The plugin env (SPEC 8): the variables a plugin's commands run with, and their cache.

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

from toolchain.layout import CONFIG_INI, VENV, Runtime, module_name, provisioning_dir

CACHE_FORMAT = 1
_TRUE = {"1", "true", "yes", "on"}


def config_files(runtime: Runtime, name: str, plugin_dir: Path) -> list[Path]:
    """The configuration layers of a plugin, lowest first (SPEC 3 merge order)."""
    files = [plugin_dir / CONFIG_INI, runtime.override(name)]
    provisioning = provisioning_dir()
    if provisioning is not None:
        files.append(provisioning / f"{name}.ini")
    return files


def _identity(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def _cache_key(runtime: Runtime, name: str, plugin_dir: Path) -> list[Any]:
    files = config_files(runtime, name, plugin_dir)
    return [
        CACHE_FORMAT,
        module_name(),
        os.environ.get("PLUGIN_CONFIG_NAME", ""),
        str(plugin_dir),
        [[str(f), _identity(f)] for f in files],
    ]


def cache_file(runtime: Runtime, name: str) -> Path:
    """Where the merged configuration of `name` is cached."""
    return runtime.cache / "env" / f"{name}.json"


def _templated(merged: Mapping[str, Mapping[str, str]]) -> bool:
    return any("{{" in v or "{%" in v for keys in merged.values() for v in keys.values())


def merged_config(runtime: Runtime, name: str, plugin_dir: Path) -> dict[str, dict[str, str]]:
    """Merge the plugin's config.ini with the runtime and provisioning overrides."""
    from toolchain import config

    layers = []
    for index, path in enumerate(config_files(runtime, name, plugin_dir)):
        if index and not path.is_file():
            continue
        raw = config.read_raw(path)
        config.validate(raw, path, override=index > 0)
        layers.append(raw)
    return config.merge(layers, config.config_name())


def _load_cache(path: Path, key: list[Any]) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    return doc


def _store_cache(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(doc, handle)
        os.replace(tmp, path)
    except OSError:
        # A read-only or foreign runtime: run uncached rather than fail the command.
        try:
            tmp.unlink()
        except OSError:
            pass


def _settings(runtime: Runtime, name: str, plugin_dir: Path) -> dict[str, Any]:
    """The cached (or freshly computed) merged configuration and its exported variables."""
    key = _cache_key(runtime, name, plugin_dir)
    path = cache_file(runtime, name)
    doc = _load_cache(path, key)
    if doc is None:
        merged = merged_config(runtime, name, plugin_dir)
        doc = {"key": key, "merged": merged, "exported": None}
        if not _templated(merged):
            from toolchain.config import exported

            doc["exported"] = exported(merged, module_name())
        _store_cache(path, doc)
    return doc


def variables(
    runtime: Runtime, name: str, plugin_dir: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The complete environment for a command of plugin `name` living in `plugin_dir`."""
    env = dict(os.environ if base is None else base)
    prefix = f"{module_name()}_CURRENT_PLUGIN".upper().replace("-", "_")
    env[f"{prefix}_NAME"] = name
    env[f"{prefix}_DIR"] = str(plugin_dir)
    doc = _settings(runtime, name, plugin_dir)
    merged: dict[str, dict[str, str]] = doc["merged"]
    exported: dict[str, str] | None = doc["exported"]
    if exported is None:
        from toolchain import config

        rendered = config.render(merged, env, plugin_dir / CONFIG_INI)
        exported = config.exported(rendered, module_name())
    env.update(exported)

    lib = str(plugin_dir / "lib")
    python_path = [lib]
    flag = merged.get("general", {}).get("_add_plugin_dir_to_python_path", "0")
    if flag.strip().lower() in _TRUE:
        python_path.insert(0, str(plugin_dir))
    _prepend(env, "PATH", [str(plugin_dir / "bin"), str(plugin_dir / VENV / "bin")])
    _prepend(env, "PYTHONPATH", python_path)
    _prepend(env, "LD_LIBRARY_PATH", [lib])
    tmp = runtime.tmp / name
    tmp.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmp)
    return env


def _prepend(env: dict[str, str], var: str, paths: list[str]) -> None:
    current = env.get(var)
    env[var] = os.pathsep.join([*paths, current] if current else paths)


def find_plugin_dir(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding a `config.ini`."""
    for directory in (start, *start.parents):
        if (directory / CONFIG_INI).is_file():
            return directory
    return None
