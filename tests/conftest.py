"""Every test runs offline, in temporary directories, with pip's configuration cleared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.wheels import make_wheel


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME shared by the session, so virtualenv's seed cache is filled once."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def hermetic_env(
    tmp_path: Path, session_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Clear every PIP_* variable and point HOME, caches and the runtime into tmp_path."""
    for key in list(os.environ):
        if key.startswith(("PIP_", "PLUGIN_", "VIRTUALENV_", "UV_")) or key in (
            "PYTHONPATH",
            "VIRTUAL_ENV",
            "SOURCE_DATE_EPOCH",
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("HOME", str(session_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(session_home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(session_home / "cache"))
    monkeypatch.setenv("PIP_CACHE_DIR", str(session_home / "pip-cache"))
    monkeypatch.setenv("VIRTUALENV_OVERRIDE_APP_DATA", str(session_home / "virtualenv"))
    monkeypatch.setenv("PLUGIN_RUNTIME_HOME", str(tmp_path / "runtime"))
    monkeypatch.setenv("NO_COLOR", "1")
    yield


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of tiny wheels: alpha 1.0/2.0, beta 1.0 (needs alpha), gamma 1.0."""
    d = tmp_path_factory.mktemp("wheels")
    make_wheel(d, "alpha", "1.0", scripts={"alpha": "alpha:main"})
    make_wheel(d, "alpha", "2.0", scripts={"alpha": "alpha:main"})
    make_wheel(d, "beta", "1.0", requires=["alpha>=1.0"])
    make_wheel(d, "gamma", "1.0")
    return d
