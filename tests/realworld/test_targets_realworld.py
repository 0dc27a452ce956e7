"""A release for another Python, with real PyPI wheels: built here (this toolchain's
Python) for cp312, installed offline by a toolchain running on Python 3.12, where its
binary wheel imports; this toolchain refuses it, naming the target it was built for."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.realworld.conftest import CHECKOUT, offline, run, script

pytestmark = [pytest.mark.realworld, pytest.mark.slow]

TARGET = "cp312-manylinux_2_17_x86_64"


def _python312() -> str | None:
    found = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.12*/bin/python3.12")))
    return found[-1] if found else shutil.which("python3.12")


@pytest.fixture(scope="session")
def toolchain312(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout installed in a Python 3.12 virtualenv (dependencies from PyPI)."""
    python = _python312()
    if python is None:
        pytest.skip("no Python 3.12 interpreter on this machine")
    venv = tmp_path_factory.mktemp("toolchain312") / "venv"
    subprocess.run([python, "-m", "venv", venv], check=True)
    done = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", CHECKOUT],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


def test_a_cp312_release_built_here_installs_and_imports_under_python_312(
    tmp_path: Path, online: Path, toolchain312: Path
) -> None:
    run([script("bootstrap_plugin.py"), "create", "--no-input", "cross"], tmp_path)
    plugin = tmp_path / "cross"
    sources = plugin / "python3_virtualenv_sources"
    (sources / "requirements-to-freeze.txt").write_text("markupsafe==3.0.2\n")
    run(["make", "release", f"PLUGIN_TARGETS={TARGET}"], plugin)
    artifact = plugin / f"cross-0.1.0-1.{TARGET}.plugin"
    info = json.loads(run([script("plugins.info"), "--json", artifact], plugin).stdout)
    assert info["metadata"]["targets"] == [TARGET]
    wheels = [f["path"] for f in info["files"] if f["path"].endswith(".whl")]
    assert [w.split("/")[-1].split("-")[2:4] for w in wheels] == [["cp312", "cp312"]], wheels

    env = offline(PLUGIN_RUNTIME_HOME=str(tmp_path / "runtime312"))
    run([toolchain312 / "plugins.install", artifact], tmp_path, env)
    code = "import sys, markupsafe._speedups as s; print(sys.version_info[:2], s.__file__)"
    ran = run([toolchain312 / "plugin_wrapper", "cross", "--", "python", "-c", code], tmp_path,
              env)  # fmt: skip
    assert ran.stdout.startswith("(3, 12) ") and "cpython-312-x86_64-linux-gnu.so" in ran.stdout

    here = offline(PLUGIN_RUNTIME_HOME=str(tmp_path / "runtime311"))
    refused = run([script("plugins.install"), artifact], tmp_path, here, ok=False)
    assert refused.returncode == 1
    assert f"built for {TARGET}; this host is cp311-" in refused.stderr
