"""The real-input tier: real PyPI and npm packages, this machine's own pip and npm settings.

Every other test runs offline with pip's configuration cleared (tests/conftest.py). Here
the registries are used as a user uses them: the pip variables and files of the machine
apply again, and downloads are cached in the user's cache directory
(`~/.cache/plugin-toolchain/realworld/`, or `$PLUGIN_TEST_CACHE`), so that a second run
of the suite, from any checkout, reuses them. What is installed is installed offline: pip, uv
and npm are pointed at a proxy that does not exist (127.0.0.1:9) and told not to use an
index, so that any download at install time fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.plugin_dirs import tool_env

pytestmark = [pytest.mark.realworld, pytest.mark.slow]

CHECKOUT = Path(__file__).resolve().parents[2]
ORIGINAL = dict(os.environ)  # before the hermetic fixture of every test clears it
NOWHERE = "http://127.0.0.1:9"


def _user_cache() -> Path:
    """The user's cache directory, as pip finds its own (before the hermetic fixture)."""
    if ORIGINAL.get("PLUGIN_TEST_CACHE"):
        return Path(ORIGINAL["PLUGIN_TEST_CACHE"])
    base = ORIGINAL.get("XDG_CACHE_HOME") or str(Path(ORIGINAL.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "plugin-toolchain" / "realworld"


@pytest.fixture(scope="session")
def cache_root() -> Path:
    """Downloads kept between runs (pip's, uv's, npm's caches, the tools the tests fetch),
    in the user's cache like pip's own, so that every checkout of the machine shares them."""
    root = _user_cache()
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, cache_root: Path) -> Path:
    """The machine's pip settings back (find-links, indexes), shared caches; the cache root."""
    for key in ("PIP_CONFIG_FILE", "PIP_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)
    for key, value in ORIGINAL.items():
        if key.startswith("PIP_") and key not in ("PIP_CACHE_DIR", "PIP_CONFIG_FILE"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("PIP_CACHE_DIR", str(cache_root / "pip"))
    monkeypatch.setenv("UV_CACHE_DIR", str(cache_root / "uv"))
    monkeypatch.setenv("npm_config_cache", str(cache_root / "npm"))
    return cache_root


def offline(**extra: str) -> dict[str, str]:
    """The environment of a command that must not reach any network."""
    return tool_env(
        PIP_NO_INDEX="1",
        UV_OFFLINE="1",
        npm_config_offline="true",
        http_proxy=NOWHERE,
        https_proxy=NOWHERE,
        HTTP_PROXY=NOWHERE,
        HTTPS_PROXY=NOWHERE,
        npm_config_proxy=NOWHERE,
        npm_config_https_proxy=NOWHERE,
        **extra,
    )


def run(
    argv: list[str | Path], cwd: Path, env: Mapping[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command of the toolchain's installation (or make); assert success unless `ok`."""
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
        env=dict(env) if env is not None else tool_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if ok:
        assert proc.returncode == 0, f"{argv}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def script(name: str) -> Path:
    """A console script of this installation."""
    return Path(sys.executable).parent / name
