"""A plugin's virtualenv: created with virtualenv, filled by pip (run as a subprocess)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from toolchain import uv
from toolchain.errors import CommandError, VenvError
from toolchain.runner import clean_env, run


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtualenv."""
    return venv / "bin" / "python"


def create(dest: Path) -> None:
    """Create a virtualenv at `dest` with pip only, on the toolchain's interpreter.

    With `PLUGIN_BACKEND=uv` (see `toolchain.uv`) uv creates it, without pip.
    """
    if uv.use():
        try:
            uv.create_venv(dest, sys.executable)
        except CommandError as exc:
            raise VenvError(f"{dest}: cannot create the virtualenv: {exc}") from None
        return
    from virtualenv import cli_run  # heavy: imported only by commands that build envs

    try:
        cli_run(
            [
                str(dest),
                "--python",
                sys.executable,
                "--no-setuptools",
                "--quiet",
                "--no-periodic-update",
            ],
            setup_logging=False,
        )
    except (SystemExit, Exception) as exc:  # virtualenv reports failures both ways
        raise VenvError(f"{dest}: cannot create the virtualenv: {exc}") from None


def pip_install(
    dest: Path,
    requirements: Path,
    *,
    find_links: Sequence[Path] = (),
    offline: bool = False,
    allow_binary: bool = True,
) -> None:
    """Install the pinned, hashed `requirements` into the virtualenv at `dest`."""
    if uv.use():
        try:
            uv.install(
                venv_python(dest),
                requirements,
                find_links=find_links,
                offline=offline,
                allow_binary=allow_binary,
            )
        except CommandError as exc:
            raise VenvError(str(exc)) from None
        return
    cmd: list[str | Path] = [
        venv_python(dest),
        "-m",
        "pip",
        "install",
        "--require-hashes",
        "--no-deps",
        "--no-input",
        "--disable-pip-version-check",
        "-r",
        requirements,
    ]
    if offline:
        cmd += ["--no-index"]
    for link in find_links:
        cmd += ["--find-links", link]
    if not allow_binary:
        cmd += ["--no-binary", ":all:"]
    env = clean_env({"PIP_NO_INDEX": "1"} if offline else None)
    try:
        run(cmd, env=env, what=f"pip install -r {requirements}")
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
) -> None:
    """Create the virtualenv at `dest` and fill it; on any failure remove `dest` entirely."""
    if dest.exists() or dest.is_symlink():
        remove(dest)
    try:
        create(dest)
        if requirements is not None and has_requirements(requirements):
            pip_install(
                dest,
                requirements,
                find_links=find_links,
                offline=offline,
                allow_binary=allow_binary,
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
