"""Every template, rendered with --no-input, built with real make, installed offline, run.

The install runs with the network unavailable: in a new network namespace
(`unshare -rn`) where that works, else with pip told to use no index and every proxy
variable pointing at an unroutable address.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemon_fixtures import wait_for
from tests.support.plugin_dirs import tool_env
from toolchain.artifact import spec
from toolchain.build import template

pytestmark = pytest.mark.slow

NAME = "tpl"
EPOCH = "1700000000"
_UNROUTABLE = "http://127.0.0.1:9"  # nothing listens there: any download fails at once


def _offline_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


OFFLINE = _offline_prefix()


def _script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(cmd: list[str], cwd: Path | None = None, **env: str) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env=tool_env(**env),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _offline_env() -> dict[str, str]:
    env = {"PIP_NO_INDEX": "1", "npm_config_offline": "true"}
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[var] = _UNROUTABLE
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _vendor_npm_package(plugin: Path, work: Path) -> None:
    """Depend on a tiny npm package packed by the test: a `file:` tarball, no registry."""
    source = work / "leftish"
    source.mkdir()
    (source / "package.json").write_text(
        json.dumps({"name": "leftish", "version": "1.2.3", "main": "index.js",
                    "bin": {"leftish": "cli.js"}})
    )  # fmt: skip
    (source / "index.js").write_text("module.exports = (s, n) => s.padStart(n, '*');\n")
    (source / "cli.js").write_text(
        "#!/usr/bin/env node\nconsole.log(require('./index.js')('cli', 6));\n"
    )
    vendor = plugin / "vendor"
    vendor.mkdir()
    _run(["npm", "pack", "--pack-destination", str(vendor), str(source)], cwd=work)
    manifest = plugin / "node_sources" / "package.json"
    doc = json.loads(manifest.read_text())
    doc["dependencies"] = {"leftish": "file:../vendor/leftish-1.2.3.tgz"}
    manifest.write_text(json.dumps(doc, indent=2) + "\n")


def _wrapper(*cmd: str) -> list[str]:
    return [_script("plugin_wrapper"), NAME, "--", *cmd]


def _check_default(runtime: Path) -> None:
    assert f"Hello from {NAME} (plugin {NAME}" in _run(_wrapper(NAME))


def _daemon_health() -> dict[str, object]:
    status = subprocess.run(
        [_script("plugins.status"), "--json", NAME], capture_output=True, text=True,
        env=tool_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    health: dict[str, object] = json.loads(status.stdout)[0]["health"]
    return health


def _check_daemon(runtime: Path) -> None:
    with subprocess.Popen(
        _wrapper(NAME), stdout=subprocess.PIPE, text=True, env=tool_env()
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        beating = _daemon_health()  # its healthcheck reads the worker's heartbeat
        proc.terminate()
        rest = proc.stdout.read()
    assert "started" in first and "stopped" in rest and proc.returncode == 0
    assert beating["state"] == "ok", beating
    assert f"worker {proc.pid}: beat 0s ago" in str(beating)
    gone = _daemon_health()
    assert gone["state"] == "failing" and "no worker beating" in str(gone), gone


def _health(port: int, proc: subprocess.Popen[bytes]) -> dict[str, object] | None:
    assert proc.poll() is None, "the service exited"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
            doc: dict[str, object] = json.load(answer)
            return doc
    except OSError:
        return None


def _check_web(runtime: Path) -> None:
    port = _free_port()
    override = runtime / "config" / "plugins" / f"{NAME}.ini"
    override.write_text(f"[extra_daemon_web]\nlisten = 127.0.0.1:{port}\n")
    with subprocess.Popen(_wrapper(NAME), stdout=subprocess.DEVNULL, env=tool_env()) as proc:
        try:
            health = wait_for("GET /health", lambda: _health(port, proc), timeout=20)
        finally:
            proc.terminate()
    assert health == {"status": "ok", "plugin": NAME, "pid": proc.pid, "workers": 2}
    assert proc.returncode == 0


def _check_node(runtime: Path) -> None:
    out = _run(_wrapper(NAME))
    assert f"Hello from {NAME} (plugin {NAME}, node v" in out
    assert "uses leftish 1.2.3 from " in out
    # From the installed plugin's own node_modules, not from the source tree.
    assert str(runtime) in out.split("uses leftish 1.2.3 from ")[1]
    assert _run(_wrapper("leftish")) == "***cli\n"  # node_modules/.bin is on PATH


CHECKS: dict[str, Callable[[Path], None]] = {
    "default": _check_default,
    "daemon": _check_daemon,
    "web": _check_web,
    "node": _check_node,
}


@pytest.mark.parametrize("name", [t.name for t in template.available()])
def test_template_releases_installs_offline_and_runs(tmp_path: Path, name: str) -> None:
    assert name in CHECKS, f"template {name}: add a check of what its plugin does"
    src = tmp_path / "src"
    src.mkdir()
    _run([_script("bootstrap_plugin.py"), "create", "--no-input", "--template", name, NAME],
         cwd=src)  # fmt: skip
    plugin = src / NAME
    if name == "node":
        _vendor_npm_package(plugin, tmp_path)
    _run(["make", "-C", str(plugin)])
    _run(["make", "-C", str(plugin), "test"])
    # As a CI pipeline can: every build step says what it did in one JSON line.
    out = _run(["make", "-C", str(plugin), "release", "PLUGIN_BUILD=plugin-build --json"],
               SOURCE_DATE_EPOCH=EPOCH)  # fmt: skip
    steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [s["step"] for s in steps] == ["wheelhouse", "release"]
    plugin_file = plugin / f"{NAME}-0.1.0-1.{spec.platform_tag()}.plugin"
    assert steps[-1] == {"step": "release", "status": "released", "path": str(plugin_file)}

    runtime = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    out = _run([*OFFLINE, _script("plugins.install"), str(plugin_file)], **_offline_env())
    assert f"installed {NAME} 0.1.0-1" in out
    assert f"{NAME}: ok" in _run([_script("plugins.check"), NAME])
    CHECKS[name](runtime)
