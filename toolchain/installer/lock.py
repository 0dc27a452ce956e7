"""The runtime lock: one writer at a time (`locked`), readers together (`reading`). Whoever
takes it first finishes what an interrupted command left (`recovery`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from toolchain.core.errors import LockTimeout
from toolchain.core.layout import Runtime
from toolchain.core.settings import lock_timeout
from toolchain.installer.recovery import recover
from toolchain.runtime.registry import ensure, venv_of


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
    """For a read-only command: the tree as it stands, never waiting for a writer.

    Readers take the lock shared, with one another. While a writer holds it (an install
    may take minutes), a reader reads the tree as it is: finished entries only, names
    starting with '.' (the writer's staging, backups, journal) are not plugins. Nothing to
    recover and nobody writing, a listing neither imports filelock nor waits. When an
    interrupted command left something to recover, this is `locked`: the next command,
    whichever, finishes the work.
    """
    import fcntl

    if not runtime.lock.is_file():
        with locked(runtime) as rt:
            yield rt
        return
    fd = os.open(runtime.lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # a writer at work: its debris is its own, read around it
            yield runtime
            return
        except OSError:  # no flock on this file system: take filelock's way
            os.close(fd)
            fd = -1
        else:
            if not _pending(runtime):
                yield runtime
                return
    finally:
        if fd >= 0:
            os.close(fd)  # releases the shared lock
    with locked(runtime) as rt:
        yield rt
