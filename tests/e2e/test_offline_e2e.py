"""End to end, with the network unavailable: install a plugin and run its commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.plugin_factory import build_plugin

BIN = Path(sys.executable).parent


def _offline_prefix() -> tuple[list[str], dict[str, str]]:
    """A command prefix (or environment) under which no network is reachable."""
    unshare = shutil.which("unshare")
    if unshare:
        probe = subprocess.run([unshare, "-rn", "true"], capture_output=True)
        if probe.returncode == 0:
            return [unshare, "-rn"], {}
    # No network namespace here: every proxy points at a closed port instead.
    dead = "http://127.0.0.1:9"
    return [], {"http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead}


@pytest.mark.slow
def test_offline_install_and_run_through_plugin_wrapper(tmp_path: Path, wheels: Path) -> None:
    plugin = build_plugin(
        tmp_path,
        "hello",
        "1.0",
        wheels=[wheels / "alpha-1.0-py3-none-any.whl", wheels / "beta-1.0-py3-none-any.whl"],
    )
    prefix, extra = _offline_prefix()
    # Nothing tells pip to stay offline but the installer itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(extra)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, str(BIN / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    installed = run("plugins.install", str(plugin))
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip() == "installed hello 1.0-1"
    assert run("plugin_wrapper", "hello", "--", "alpha").stdout.strip() == "alpha 1.0"
    assert run("plugin_wrapper", "hello", "--", "hello").stdout.strip() == "hello from hello"
    code = "import beta, hello_helper, sys; print(hello_helper.VERSION, sys.prefix)"
    shown = run("plugin_wrapper", "hello", "--", "python", "-c", code)
    assert shown.returncode == 0, shown.stderr
    version, prefix_dir = shown.stdout.split()
    runtime = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    assert version == "1.0"
    assert Path(prefix_dir).resolve().parent == runtime / "venvs"
    assert run("plugins.check", "hello").returncode == 0
    assert run("plugins.uninstall", "hello").returncode == 0
