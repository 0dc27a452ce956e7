"""Node.js dependencies of a plugin: `node_sources/package.json` -> `local/node_modules`.

`node_sources/package-lock.json` is the frozen file, as `requirements3.txt` is for python:
`make` writes it when it is missing or when `package.json` changed, and it is committed.
npm runs in a project directory one level below the plugin directory (`local/` when
building, a scratch directory when installing), so that the `file:` paths of
`package.json`, written relative to `node_sources/`, mean the same files everywhere
(`file:../vendor/x-1.0.0.tgz`). A release carries an npm cache holding every package the
lock file downloads from a registry, so that `npm ci --offline` installs it on a machine
without network. Directory (`file:`) dependencies are installed as copies, not links
(`--install-links`), so that `node_modules` can move into the plugin's `local/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from toolchain.core.errors import CommandError, NodeError
from toolchain.core.runner import clean_env, run

SOURCES = "node_sources"
PACKAGE_JSON = f"{SOURCES}/package.json"
LOCK = f"{SOURCES}/package-lock.json"
MODULES = "node_modules"
STAMP = "local/.node-stamp"
_SCRATCH = ".node-install"
_STAMP_FILE = ".stamp"


def wanted(plugin_dir: Path) -> bool:
    """True when the plugin declares Node.js dependencies."""
    return (plugin_dir / PACKAGE_JSON).is_file()


def _npm(args: list[str], project: Path, cache: Path | None, what: str) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise NodeError(f"{what}: npm not found on PATH; install Node.js (with npm)")
    cmd = [npm, *args, "--no-audit", "--no-fund", "--install-links"]
    if cache is not None:
        cmd += ["--cache", str(cache)]
    env = clean_env({"npm_config_update_notifier": "false", "npm_config_loglevel": "warn"})
    try:
        return run(cmd, cwd=project, env=env, what=what)
    except CommandError as exc:
        raise NodeError(str(exc)) from None


def _prepare(plugin_dir: Path, project: Path) -> None:
    """Put package.json (and the lock file, if any) into the npm project directory."""
    project.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plugin_dir / PACKAGE_JSON, project / "package.json")
    lock = plugin_dir / LOCK
    if lock.is_file():
        shutil.copyfile(lock, project / "package-lock.json")
    else:
        (project / "package-lock.json").unlink(missing_ok=True)


def build(plugin_dir: Path) -> Path:
    """Install the dependencies into `local/node_modules`, freezing the lock file if needed."""
    project = plugin_dir / "local"
    _prepare(plugin_dir, project)
    # `npm install` keeps an in-sync lock file as it is and re-resolves only what changed.
    _npm(["install"], project, None, f"npm install ({plugin_dir / PACKAGE_JSON})")
    built_lock = (project / "package-lock.json").read_bytes()
    lock = plugin_dir / LOCK
    if not lock.is_file() or lock.read_bytes() != built_lock:
        tmp = lock.with_name(f".{lock.name}.tmp")
        tmp.write_bytes(built_lock)
        os.replace(tmp, lock)
    (plugin_dir / STAMP).touch()
    return project / MODULES


def _remote_packages(lock: Path) -> list[str]:
    """The registry URLs (`resolved`) of every package the lock file downloads."""
    try:
        doc: dict[str, Any] = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NodeError(f"{lock}: unreadable ({exc}); run `make` to write it again") from None
    urls = {
        str(entry["resolved"])
        for entry in doc.get("packages", {}).values()
        if isinstance(entry, dict)
        and str(entry.get("resolved", "")).startswith(("http://", "https://"))
        and not entry.get("link")
    }
    return sorted(urls)


def pack_cache(plugin_dir: Path, cache: Path) -> Path:
    """Fill `cache` with what `npm ci --offline` needs (reused while the lock is unchanged)."""
    lock = plugin_dir / LOCK
    if not lock.is_file():
        raise NodeError(f"{lock}: missing; run `make` to freeze the Node.js dependencies")
    want = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = cache / _STAMP_FILE
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == want:
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    urls = _remote_packages(lock)
    if urls:
        _npm(["cache", "add", *urls], plugin_dir, cache, f"npm cache add ({lock})")
    stamp.write_text(want, encoding="utf-8")
    return cache


def install_offline(plugin_dir: Path, local: Path, cache: Path | None, scratch: Path) -> Path:
    """`npm ci --offline` from the plugin's lock file; move node_modules into `local`.

    `scratch` (removed afterwards) receives a copy of the released cache: npm writes into
    its cache, and the installed files must stay as released.
    """
    lock = plugin_dir / LOCK
    if not lock.is_file():
        raise NodeError(f"{lock}: missing in the artifact; rebuild it with `make release`")
    project = plugin_dir / _SCRATCH
    try:
        _prepare(plugin_dir, project)
        if cache is not None and cache.is_dir():
            shutil.copytree(cache, scratch, dirs_exist_ok=True)
        _npm(["ci", "--offline"], project, scratch, f"npm ci --offline ({lock})")
        target = local / MODULES
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(project / MODULES, target)
    finally:
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return target
