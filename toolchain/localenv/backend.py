"""One backend object builds environments and freezes: pip (default) or uv.

`current()` picks it once from `$PLUGIN_BACKEND`; callers then only talk to the
`Backend` protocol. Both are run as
subprocesses, never imported, and give the same pins and the same installed files
(bytecode included). The pip backend creates virtualenvs with virtualenv (pip inside),
installs with pip and freezes with pip-tools; the uv backend (`pip install
plugin-toolchain[fast]`) does all three with uv, and its virtualenvs hold no pip.
An offline install from an artifact's wheelhouse runs neither installer: `venv.build`
then only asks the backend for the virtualenv and fills it from the wheel store.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from toolchain.core import settings
from toolchain.core.errors import ToolchainError, VenvError
from toolchain.core.runner import clean_env, python, run


class Backend(Protocol):
    """What builds a plugin's environment and freezes its requirements."""

    name: str

    def create(self, dest: Path) -> None:
        """Create an empty virtualenv at `dest` on the toolchain's interpreter."""

    def install(
        self,
        dest: Path,
        requirements: Path,
        *,
        find_links: Sequence[Path] = (),
        offline: bool = False,
        allow_binary: bool = True,
    ) -> None:
        """Install the pinned, hashed `requirements` (no dependencies) into `dest`."""

    def compile(self, source: Path, output: Path, constraints: Sequence[Path] = ()) -> None:
        """Resolve `source` into `output` (same directory): exact pins with hashes."""


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtualenv."""
    return venv / "bin" / "python"


def _where_from(find_links: Sequence[Path], allow_binary: bool) -> list[str | Path]:
    """The options both installers take alike: local wheel directories, the binary policy."""
    options: list[str | Path] = []
    for link in find_links:
        options += ["--find-links", link]
    return options if allow_binary else [*options, "--no-binary", ":all:"]


class PipBackend:
    """virtualenv, pip and pip-tools."""

    name = "pip"

    def create(self, dest: Path) -> None:
        self._virtualenv([str(dest), "--python", sys.executable, "--no-setuptools", "--quiet"])

    @classmethod
    def create_unseeded(cls, dest: Path) -> None:
        """A virtualenv with no package in it (its pip comes from the wheel store)."""
        cls._virtualenv([str(dest), "--python", sys.executable, "--no-seed", "--quiet"])

    @staticmethod
    def _virtualenv(argv: list[str]) -> None:
        from virtualenv import cli_run  # heavy: imported only by commands that build envs

        dest = argv[0]
        try:
            cli_run([*argv, "--no-periodic-update"], setup_logging=False)
        except (SystemExit, Exception) as exc:  # virtualenv reports failures both ways
            raise VenvError(f"{dest}: cannot create the virtualenv: {exc}") from None

    def install(
        self,
        dest: Path,
        requirements: Path,
        *,
        find_links: Sequence[Path] = (),
        offline: bool = False,
        allow_binary: bool = True,
    ) -> None:
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
        cmd += _where_from(find_links, allow_binary)
        env = clean_env({"PIP_NO_INDEX": "1"} if offline else None)
        run(cmd, env=env, what=f"pip install -r {requirements}")

    def compile(self, source: Path, output: Path, constraints: Sequence[Path] = ()) -> None:
        cmd = [
            python(),
            "-m",
            "piptools",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--no-header",
            "--strip-extras",
            "--allow-unsafe",
            "--no-config",
            "--no-emit-index-url",
            "--no-emit-find-links",
            "--no-emit-trusted-host",
            "--output-file",
            output.name,
        ]
        for path in constraints:
            cmd += ["--constraint", str(path.absolute())]
        cmd.append(source.name)
        run(cmd, cwd=source.parent, env=clean_env(), what=f"pip-compile {source.name}")


def seed_wheel(project: str) -> Path:
    """The wheel of `project` (pip) that virtualenv seeds environments of this Python with."""
    from virtualenv.seed.wheels.embed import get_embed_wheel

    found = get_embed_wheel(project, f"{sys.version_info.major}.{sys.version_info.minor}")
    if found is None:
        raise VenvError(f"virtualenv has no {project} wheel for this Python")
    return Path(found.path)


def uv_executable() -> str | None:
    """The `uv` binary: the one installed beside the toolchain's python, else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("uv")


class UvBackend:
    """uv for all three: `uv venv`, `uv pip install`, `uv pip compile`."""

    name = "uv"

    def __init__(self) -> None:
        found = uv_executable()
        if found is None:
            raise ToolchainError(
                f"{settings.BACKEND}=uv but uv is not installed: "
                "`pip install plugin-toolchain[fast]`, or unset it to use pip"
            )
        self.uv = found

    @staticmethod
    def _env(offline: bool) -> dict[str, str]:
        extra = {"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
        if offline:
            extra["UV_OFFLINE"] = "1"
        env = clean_env(extra)
        for key in (
            "UV_SYSTEM_PYTHON",
            "UV_PROJECT_ENVIRONMENT",
            "UV_INDEX_URL",
            "UV_EXTRA_INDEX_URL",
        ):
            env.pop(key, None)
        return env

    def create(self, dest: Path) -> None:
        cmd = [self.uv, "venv", "--quiet", "--no-project", "--python", sys.executable, str(dest)]
        run(cmd, env=self._env(offline=True), what=f"uv venv {dest}")

    def install(
        self,
        dest: Path,
        requirements: Path,
        *,
        find_links: Sequence[Path] = (),
        offline: bool = False,
        allow_binary: bool = True,
    ) -> None:
        cmd: list[str | Path] = [
            self.uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            venv_python(dest),
            "--require-hashes",
            "--no-deps",
            "--compile-bytecode",  # pip compiles too: the same installed files
            "--link-mode",
            "copy",  # no file shared with uv's cache
            "-r",
            requirements,
        ]
        if offline:
            cmd += ["--offline", "--no-index"]
        cmd += _where_from(find_links, allow_binary)
        run(cmd, env=self._env(offline), what=f"uv pip install -r {requirements}")

    def compile(self, source: Path, output: Path, constraints: Sequence[Path] = ()) -> None:
        cmd: list[str | Path] = [
            self.uv,
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--no-header",
            "--python",
            python(),
            "--output-file",
            output.name,
        ]
        for path in constraints:
            cmd += ["--constraint", path.absolute()]
        cmd.append(source.name)
        run(
            cmd,
            cwd=source.parent,
            env=self._env(offline=False),
            what=f"uv pip compile {source.name}",
        )


def current() -> Backend:
    """The backend `$PLUGIN_BACKEND` asks for; an error if it is unknown or not installed."""
    return UvBackend() if settings.backend() == "uv" else PipBackend()
