"""A plugin's virtualenv: built by the backend (`backend.current()`), removed whole when
any step fails, and fingerprinted so that an unchanged one is not rebuilt.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from toolchain.core.errors import CommandError, VenvError
from toolchain.localenv import backend


def create(dest: Path, using: backend.Backend | None = None) -> None:
    """Create an empty virtualenv at `dest` (pip inside with the pip backend, none with uv)."""
    try:
        (using or backend.current()).create(dest)
    except CommandError as exc:
        raise VenvError(f"{dest}: cannot create the virtualenv: {exc}") from None


def pip_install(
    dest: Path,
    requirements: Path,
    *,
    find_links: Sequence[Path] = (),
    offline: bool = False,
    allow_binary: bool = True,
    using: backend.Backend | None = None,
) -> None:
    """Install the pinned, hashed `requirements` into the virtualenv at `dest`."""
    try:
        (using or backend.current()).install(
            dest, requirements, find_links=find_links, offline=offline, allow_binary=allow_binary
        )
    except CommandError as exc:
        raise VenvError(str(exc)) from None


def has_requirements(requirements: Path) -> bool:
    """Whether a requirements file pins anything (pip refuses an empty hashed install)."""
    if not requirements.is_file():
        return False
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            return True
    return False


def build(
    dest: Path,
    requirements: Path | None,
    *,
    find_links: Sequence[Path] = (),
    offline: bool = False,
    allow_binary: bool = True,
    store: Path | None = None,
) -> None:
    """Create the virtualenv at `dest` and fill it; on any failure remove `dest` entirely.

    With `store` (an offline install from a wheelhouse), the wheels are installed
    directly (`localenv.wheels`), through that wheel store, with no pip or uv run: the
    backend only creates the virtualenv (with the pip backend, pip comes from the store).
    """
    using = backend.current()  # chosen once, before anything is created
    if dest.exists() or dest.is_symlink():
        remove(dest)
    wanted = requirements is not None and has_requirements(requirements)
    try:
        if store is not None and offline:
            from toolchain.localenv import wheels

            tools, make = [], lambda: create(dest, using)  # uv's virtualenvs hold no pip
            if using.name == "pip":  # pip from the store too: one copy for every venv
                tools.append(backend.seed_wheel("pip"))
                make = lambda: backend.PipBackend.create_unseeded(dest)  # noqa: E731
            wheels.install(
                dest,
                requirements if wanted else None,
                find_links,
                store,
                make,
                tools=tools,
                installer=using.name,
            )
            return
        create(dest, using)
        if wanted:
            assert requirements is not None
            pip_install(
                dest,
                requirements,
                find_links=find_links,
                offline=offline,
                allow_binary=allow_binary,
                using=using,
            )
    except BaseException:
        remove(dest)
        raise


def remove(path: Path) -> None:
    """Remove a virtualenv (or a link to one)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def fingerprint(requirements: Path, allow_binary: bool) -> str:
    """What a built virtualenv depends on: the pins, the binary policy, the interpreter."""
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes() if requirements.is_file() else b"")
    digest.update(f"\0binary={allow_binary}\0python={sys.version}\0{sys.executable}".encode())
    return digest.hexdigest()
