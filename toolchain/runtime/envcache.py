"""The plugin env cache, read on `plugin_wrapper`'s fast path with plain strings.

Cron starts `plugin_wrapper` often, and with a warm cache its cost is Python's start-up
plus what it imports: this module imports only `os`, the built-in `marshal` and
`core.settings` (`os` and the errors), no pathlib, dataclasses, argparse, typing, nor json
(which pulls in `re`). The cache is the JSON file `toolchain.runtime.plugin_env` writes,
plus a marshal copy of it for this fast path; both use the same key, and the environment
is composed by the same function.
"""

from __future__ import annotations

import marshal
import os

from toolchain.core import settings

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import IO, Any

CACHE_FORMAT = 2  # 2: the layers of required plugins
CONFIG_INI = "config.ini"  # toolchain.core.layout's names, which this module must not import
VENV = "local"
_TRUE = {"1", "true", "yes", "on"}


def config_files(home: str, name: str, plugin_dir: str) -> list[str]:
    """The configuration layers of a plugin, lowest first: plugin, runtime, provisioning."""
    files = [
        os.path.join(plugin_dir, CONFIG_INI),
        os.path.join(home, "config", "plugins", f"{name}.ini"),
    ]
    provisioning = settings.provisioning_dir()
    if provisioning:
        files.append(os.path.join(provisioning, f"{name}.ini"))
    return files


def _identity(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def cache_key(home: str, name: str, plugin_dir: str) -> list[object]:
    """What the cached configuration depends on: every config file's identity, the variant."""
    return [
        CACHE_FORMAT,
        settings.module_name(),
        settings.config_name(),
        plugin_dir,
        [[f, _identity(f)] for f in config_files(home, name, plugin_dir)],
    ]


def venv_identity(plugin_dir: str) -> list[object] | None:
    """The identity of a plugin's virtualenv: its `local` entry (inode and time, a rebuilt
    directory may reuse the inode) and its `lib/` (where the site-packages directory is
    named after the Python version); None without one."""
    local = os.path.join(plugin_dir, VENV)
    try:
        st = os.lstat(local)
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, _identity(os.path.join(local, "lib"))]


def dep_identity(plugin_dir: str) -> list[object] | None:
    """What a required plugin's part of the env depends on: its entry (a new tree after an
    upgrade or a rollback, a link when devlinked), its config.ini (its own requirements)
    and its virtualenv; None when it is not there."""
    try:
        entry = os.lstat(plugin_dir).st_ino
    except OSError:
        return None
    config = _identity(os.path.join(plugin_dir, CONFIG_INI))
    return [entry, config, venv_identity(plugin_dir)]


def unexpired(doc: Mapping[str, object]) -> bool:
    """Whether the addresses the document resolved (`expires`: runtime.hostnames) are
    still fresh; True for a document without any."""
    expires = doc.get("expires")
    if expires is None:
        return True
    import time  # built in: no file to read

    return isinstance(expires, float) and time.time() < expires


def _deps_current(doc: Mapping[str, object]) -> bool:
    """Whether the required plugins the document was computed with are still the same,
    and so is the plugin's own virtualenv when the document lists its site-packages."""
    deps = doc.get("deps") or []
    if not isinstance(deps, list):
        return False
    own = doc.get("own_venv")
    if deps and (not isinstance(own, list) or venv_identity(str(own[0])) != own[1]):
        return False
    return all(isinstance(d, list) and dep_identity(d[0]) == d[1] for d in deps)


def cache_path(home: str, name: str) -> str:
    """Where the merged configuration of `name` is cached."""
    return os.path.join(home, "cache", "env", f"{name}.json")


def fast_path(home: str, name: str) -> str:
    """Where the marshal copy of the cached configuration of `name` lives."""
    return os.path.join(home, "cache", "env", f"{name}.marshal")


def _trusted(handle: IO[Any]) -> bool:
    """Whether an open cache file is ours alone: owned by this user, writable by nobody else.

    The cache sets PATH, PYTHONPATH and LD_LIBRARY_PATH of the plugin's commands: a file
    another user could have written is not used (the env is computed again, and the file
    written anew).
    """
    st = os.fstat(handle.fileno())
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def open_private(path: str, binary: bool = True) -> IO[Any]:
    """A new file at `path` (none may exist) that only this user can read or write."""
    try:
        os.unlink(path)  # left by a process that died here with the same pid
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8")


def load(path: str, key: Sequence[object]) -> dict[str, object] | None:
    """The cached JSON document at `path` if it was computed for `key`, expired or not
    (`unexpired`: an expired one's addresses are what the next computation falls back
    on)."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            if not _trusted(handle):
                return None
            doc = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not _deps_current(doc):
        return None
    return doc


def load_fast(path: str, key: Sequence[object]) -> dict[str, object] | None:
    """The marshal copy at `path` if it was computed for `key` (by this Python)."""
    try:
        with open(path, "rb") as handle:
            if not _trusted(handle):
                return None
            doc = marshal.load(handle)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not _deps_current(doc):
        return None
    return doc if unexpired(doc) else None


def store_fast(path: str, doc: Mapping[str, object]) -> None:
    """Write the marshal copy of a cache document atomically; quietly skip on failure."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open_private(tmp) as handle:
            marshal.dump(dict(doc), handle)
        os.replace(tmp, path)
    except (OSError, ValueError):  # a read-only runtime: the slow path still works
        try:
            os.unlink(tmp)
        except OSError:
            pass


def compose(
    base: Mapping[str, str],
    home: str,
    name: str,
    plugin_dir: str,
    merged: Mapping[str, Mapping[str, str]],
    exported: Mapping[str, str],
    deps: Sequence[Sequence[Any]] = (),
    own_sites: Sequence[str] = (),
    make_tmp: bool = True,
) -> dict[str, str]:
    """The complete environment of a command of plugin `name`.

    The plugin's own entries come first, then those of each plugin it requires (`deps`:
    `[directory, identity, site-packages directories]`, nearest first). With such layers,
    the plugin's own site-packages (`own_sites`) go on PYTHONPATH before theirs, so that
    its packages shadow a required plugin's. `make_tmp`: create the `TMPDIR` it names.
    """
    env = dict(base)
    prefix = f"{settings.module_name()}_CURRENT_PLUGIN".upper().replace("-", "_")
    env[f"{prefix}_NAME"] = name
    env[f"{prefix}_DIR"] = plugin_dir
    env.update(exported)
    flag = merged.get("general", {}).get("_add_plugin_dir_to_python_path", "0")
    path: list[str] = []
    python_path = [plugin_dir] if flag.strip().lower() in _TRUE else []
    libraries: list[str] = []
    node_path: list[str] = []
    layers = [(plugin_dir, own_sites if deps else ())]
    layers += [(str(dep[0]), [str(site) for site in dep[2]]) for dep in deps if dep[1]]
    for directory, sites in layers:
        lib = os.path.join(directory, "lib")
        path += [os.path.join(directory, "bin"), os.path.join(directory, VENV, "bin")]
        python_path += [lib, *sites]
        libraries.append(lib)
        node_modules = os.path.join(directory, VENV, "node_modules")
        if os.path.isdir(node_modules):  # Node.js dependencies (toolchain.localenv.node)
            path.append(os.path.join(node_modules, ".bin"))
            node_path.append(node_modules)
    if node_path:
        _prepend(env, "NODE_PATH", node_path)
    _prepend(env, "PATH", path)
    _prepend(env, "PYTHONPATH", python_path)
    _prepend(env, "LD_LIBRARY_PATH", libraries)
    tmp = os.path.join(home, "tmp", name)
    if make_tmp:
        os.makedirs(tmp, exist_ok=True)
    env["TMPDIR"] = tmp
    return env


def _prepend(env: dict[str, str], var: str, paths: list[str]) -> None:
    current = env.get(var)
    env[var] = os.pathsep.join([*paths, current] if current else paths)


def cached_variables(name: str) -> dict[str, str] | None:
    """The env of installed plugin `name` from a warm cache; None when it must be computed."""
    home = settings.runtime_home()
    plugin_dir = os.path.join(home, "plugins", name)
    if (
        "/" in name
        or name.startswith(".")
        or not os.path.isfile(os.path.join(plugin_dir, CONFIG_INI))
        or not os.path.isdir(os.path.join(plugin_dir, "local", "bin"))  # the full path says why
    ):
        return None
    doc = load_fast(fast_path(home, name), cache_key(home, name, plugin_dir))
    if doc is None:
        return None
    merged, exported = doc.get("merged"), doc.get("exported")
    if not isinstance(merged, dict) or not isinstance(exported, dict):
        return None  # templated values: rendered at each run by plugin_env
    deps, own_sites = doc.get("deps") or [], doc.get("own_sites") or []
    if not isinstance(deps, list) or not isinstance(own_sites, list):
        return None
    return compose(os.environ, home, name, plugin_dir, merged, exported, deps, own_sites)
