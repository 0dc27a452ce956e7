"""The optional uv backend (`pip install plugin-toolchain[fast]`, `PLUGIN_BACKEND=uv`).

uv is run as a subprocess, like pip: it creates virtualenvs, installs the pinned wheels
(offline when asked) and freezes requirements. It is used only when asked for and
installed; pip, pip-tools and virtualenv stay the default. It yields the same pins and
the same installed files (bytecode included); its virtualenvs hold no pip.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from toolchain.errors import ToolchainError
from toolchain.runner import clean_env, run

BACKEND_VARIABLE = "PLUGIN_BACKEND"
BACKENDS = ("pip", "uv")


def requested() -> bool:
    """Whether `$PLUGIN_BACKEND` asks for uv (it defaults to pip)."""
    value = os.environ.get(BACKEND_VARIABLE, "").strip().lower() or "pip"
    if value not in BACKENDS:
        raise ToolchainError(f"{BACKEND_VARIABLE}={value!r}: choose one of {', '.join(BACKENDS)}")
    return value == "uv"


def executable() -> str | None:
    """The `uv` binary: the one installed beside the toolchain's python, else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("uv")


def available() -> bool:
    """Whether uv is installed."""
    return executable() is not None


def use() -> bool:
    """Whether to use uv: asked for with `PLUGIN_BACKEND=uv`; an error if it is missing."""
    if not requested():
        return False
    if not available():
        raise ToolchainError(
            f"{BACKEND_VARIABLE}=uv but uv is not installed: "
            "`pip install plugin-toolchain[fast]`, or unset it to use pip"
        )
    return True


def _env(offline: bool) -> dict[str, str]:
    extra = {"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    if offline:
        extra["UV_OFFLINE"] = "1"
    env = clean_env(extra)
    for key in ("UV_SYSTEM_PYTHON", "UV_PROJECT_ENVIRONMENT", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL"):
        env.pop(key, None)
    return env


def _uv() -> str:
    path = executable()
    if path is None:
        raise ToolchainError("uv is not installed: `pip install plugin-toolchain[fast]`")
    return path


def create_venv(dest: Path, python: str) -> None:
    """Create an empty virtualenv (no pip) at `dest` for the interpreter `python`."""
    cmd = [_uv(), "venv", "--quiet", "--no-project", "--python", python, str(dest)]
    run(cmd, env=_env(offline=True), what=f"uv venv {dest}")


def install(
    python: Path,
    requirements: Path,
    *,
    find_links: Sequence[Path] = (),
    offline: bool = False,
    allow_binary: bool = True,
) -> None:
    """`pip install --require-hashes --no-deps -r requirements` into `python`'s environment."""
    cmd: list[str | Path] = [
        _uv(),
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
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
    for link in find_links:
        cmd += ["--find-links", link]
    if not allow_binary:
        cmd += ["--no-binary", ":all:"]
    run(cmd, env=_env(offline), what=f"uv pip install -r {requirements}")


def compile_requirements(
    source: Path, output: Path, *, python: str, constraints: Sequence[Path] = ()
) -> None:
    """Resolve `source` into `output`: exact pins with hashes, like pip-tools' output."""
    cmd: list[str | Path] = [
        _uv(),
        "pip",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--no-header",
        "--python",
        python,
        "--output-file",
        output.name,
    ]
    for path in constraints:
        cmd += ["--constraint", path.absolute()]
    cmd.append(source.name)
    run(cmd, cwd=source.parent, env=_env(offline=False), what=f"uv pip compile {source.name}")
