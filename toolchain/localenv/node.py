"""Node.js dependencies of a plugin: `node_sources/package.json` -> `local/node_modules`.

`node_sources/package-lock.json` is the frozen file, as `requirements3.txt` is for python:
`make` writes it when it is missing or when `package.json` changed, and it is committed.
npm runs in a project directory one level below the plugin directory (`local/` when
building, a scratch directory when installing), so that the `file:` paths of
`package.json`, written relative to `node_sources/`, mean the same files everywhere
(`file:../vendor/x-1.0.0.tgz`). A release carries an npm cache holding every package the
lock file installs (`pack_cache`), so that `npm ci --offline` installs it on a machine
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


def pack_cache(plugin_dir: Path, cache: Path, epoch: int) -> Path:
    """Fill `cache` with every package of the lock file, proven enough for an offline install.

    `npm ci` into a scratch project fills the cache whatever the lock file records (with
    `omit-lockfile-registry-resolved` it has no download URLs, and npm looks the packages
    up on its registry); `npm ci --offline` from a copy of it then proves, at release time,
    that the install on a machine without network will find everything. The cache is made
    reproducible: npm's logs go, and the times its index records become `epoch`.
    Reused while the lock file does not change.
    """
    lock = plugin_dir / LOCK
    if not lock.is_file():
        raise NodeError(f"{lock}: missing; run `make` to freeze the Node.js dependencies")
    want = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = cache / _STAMP_FILE
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == want:
        _reproducible(cache, epoch)  # the same cache, this release's times
        return cache
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    fill, check = plugin_dir / ".node-pack", plugin_dir / ".node-check"
    try:
        _prepare(plugin_dir, fill)
        _npm(["ci", "--ignore-scripts"], fill, cache, f"npm ci ({lock})")
        _reproducible(cache, epoch)
        _prepare(plugin_dir, check)
        shutil.copytree(cache, check / ".cache")
        try:
            _npm(
                ["ci", "--offline", "--ignore-scripts"], check, check / ".cache", "npm ci --offline"
            )
        except NodeError as exc:
            raise NodeError(
                f"{lock}: the release's npm cache would not install offline ({exc}); "
                "check the registry settings of npm, then run make release again"
            ) from None
    except BaseException:
        shutil.rmtree(cache, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(fill, ignore_errors=True)
        shutil.rmtree(check, ignore_errors=True)
    stamp.write_text(want, encoding="utf-8")
    return cache


def _reproducible(cache: Path, epoch: int) -> None:
    """Drop npm's logs and other state; give every index entry the time `epoch`.

    An index bucket of npm's cache (cacache) holds lines `SHA1(json)<TAB>json`; an entry
    rewritten keeps that form, with its hash computed again. The last entry of a key wins,
    as in cacache.
    """
    from email.utils import formatdate

    for entry in cache.iterdir():
        if entry.name not in ("_cacache", _STAMP_FILE):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    index = cache / "_cacache" / "index-v5"
    millis, date = epoch * 1000, formatdate(epoch, usegmt=True)
    for bucket in sorted(p for p in index.rglob("*") if p.is_file()) if index.is_dir() else []:
        entries: dict[str, dict[str, Any]] = {}
        for line in bucket.read_text(encoding="utf-8").splitlines():
            digest, _tab, text = line.partition("\t")
            if not text or hashlib.sha1(text.encode()).hexdigest() != digest:
                continue  # an entry cut short by a crash: cacache skips it too
            doc = json.loads(text)
            doc["time"] = millis
            meta = doc.get("metadata")
            if isinstance(meta, dict):
                meta["time"] = millis
                headers = meta.get("resHeaders")
                if isinstance(headers, dict) and "date" in headers:
                    headers["date"] = date
            entries[doc.get("key", "")] = doc
        lines = []
        for doc in entries.values():
            text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
            lines.append(f"\n{hashlib.sha1(text.encode()).hexdigest()}\t{text}")
        bucket.write_text("".join(lines), encoding="utf-8")
    tmp = cache / "_cacache" / "tmp"
    if tmp.is_dir():
        shutil.rmtree(tmp)


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
