"""The runtime tree: its creation, its lock, recovery after a crash, its installed plugins."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import swap
from toolchain.errors import InstallError, LockTimeout, NotInstalled, ToolchainError
from toolchain.layout import CONFIG_INI, METADATA, VENV, Runtime, env_number

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 300.0
INSTALL_RECORD = ".release/install.json"


def lock_timeout() -> float:
    """Seconds to wait for the runtime lock (`$PLUGIN_LOCK_TIMEOUT`, default 300)."""
    return env_number("PLUGIN_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, ToolchainError, "seconds")


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


@contextmanager
def locked(runtime: Runtime) -> Iterator[Runtime]:
    """Hold the runtime lock; on entry, recover whatever an interrupted command left."""
    from filelock import FileLock, Timeout

    ensure(runtime)
    seconds = lock_timeout()
    lock = FileLock(str(runtime.lock), timeout=seconds)
    try:
        lock.acquire()
    except Timeout:
        raise LockTimeout(
            f"{runtime.lock}: another plugins command still holds the runtime lock after "
            f"{seconds:g}s; retry later or raise PLUGIN_LOCK_TIMEOUT"
        ) from None
    try:
        recover(runtime)
        yield runtime
    finally:
        lock.release()


def _pending(runtime: Runtime) -> bool:
    """Whether an interrupted command left a journal, a staging entry, a backup or a venv."""
    try:
        names = os.listdir(runtime.plugins)
        venvs = set(os.listdir(runtime.venvs))
    except FileNotFoundError:
        return False
    if any(name.startswith(".") for name in names):
        return True
    for name in names:
        venv = venv_of(runtime.plugin(name))
        if venv is not None:
            venvs.discard(venv.name)
    return bool(venvs)


@contextmanager
def reading(runtime: Runtime) -> Iterator[Runtime]:
    """For a read-only command: the runtime lock shared with other readers.

    Writers hold the lock exclusively (`locked`, filelock's `flock` on the same file), so
    a reader waits for them and they for it. Nothing to recover and nobody writing, a
    listing neither imports filelock nor waits for other readers. When something is left
    to recover, this is `locked`: the next command, whichever, finishes the work.
    """
    import fcntl
    import time

    if _pending(runtime) or not runtime.lock.is_file():
        with locked(runtime) as rt:
            yield rt
        return
    fd = os.open(runtime.lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        seconds = lock_timeout()
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{runtime.lock}: another plugins command still holds the runtime lock "
                        f"after {seconds:g}s; retry later or raise PLUGIN_LOCK_TIMEOUT"
                    ) from None
                time.sleep(0.05)
            except OSError:  # no flock on this file system: take filelock's way
                os.close(fd)
                fd = -1
                break
        if fd >= 0 and not _pending(runtime):  # a writer may have died before we got it
            yield runtime
            return
    finally:
        if fd >= 0:
            os.close(fd)  # releases the shared lock
    with locked(runtime) as rt:
        yield rt


def recover(runtime: Runtime) -> None:
    """Complete or revert interrupted transactions, then drop unreferenced virtualenvs."""
    finished = swap.recover(runtime)
    collect_venvs(runtime)
    if finished:
        from toolchain.install import finalize  # the install's own last step

        for name in finished:
            if entry_exists(runtime, name):
                finalize(runtime, name)


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


def collect_venvs(runtime: Runtime) -> list[Path]:
    """Remove the virtualenvs that no runtime entry references; return them."""
    if not runtime.venvs.is_dir() or not runtime.plugins.is_dir():
        return []
    used = set()
    for entry in runtime.plugins.iterdir():
        venv = venv_of(entry)
        if venv is not None:
            used.add(venv.name)
    removed = []
    for venv in sorted(runtime.venvs.iterdir()):
        if venv.name not in used:
            try:
                swap.drop(venv)
            except OSError as exc:  # only space is lost: the next command retries
                log.warning("%s: cannot remove this unused virtualenv: %s", venv, exc)
                continue
            removed.append(venv)
    return removed


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
    if home.is_symlink():
        from toolchain import config  # only a devlinked plugin is described from its config

        general = config.load(home / CONFIG_INI).general
        return Installed(
            name, home, general["_version"], general["_release"], Path(os.readlink(home))
        )
    meta = read_json(home / METADATA)
    return Installed(name, home, str(meta.get("version")), str(meta.get("release")), None)


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
