"""SIGKILL at evenly spaced moments of a real upgrade, then recovery: one whole version.

Two releases of a plugin are made with real `make release` (a wheel in the wheelhouse, a
cron job and a config value that name the version). The upgrade from 1 to 2 is timed
once, noting when its journal appears; then, from the same runtime with version 1
installed and an operator's edit in its override file, the upgrade is started again and
its whole process group SIGKILLed (as a power cut or the OOM killer would: pip and
postinstall included) at evenly spaced moments: over the whole upgrade, then over its
commit (from the moment its journal appears to the end, measured in each run from
that moment, so that the run-to-run jitter of the steps before does not move them). The next
command recovers; then the tree matches the manifest of
exactly one version, the runtime's cron block and the plugin env name that version, the
override file is the operator's, and the archive holds version 1 exactly when version 2
is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_templates_e2e import _script
from tests.support.plugin_dirs import render_default, set_requirements, tool_env

pytestmark = pytest.mark.slow

WHOLE_POINTS = 12  # evenly spaced over the whole upgrade
COMMIT_POINTS = 10  # evenly spaced over the commit: the swap, the hooks, the journal's end
OPERATOR_EDIT = "[custom]\ngreeting = the operator's own\n"


def _release(parent: Path, wheels: Path, version: str) -> Path:
    plugin = render_default(parent, "hello")
    set_requirements(plugin, wheels, "alpha==1.0")
    ini = plugin / "config.ini"
    text = ini.read_text().replace("_version = 0.1.0", f"_version = {version}")
    assert "[custom]\n" in text
    ini.write_text(text.replace("[custom]\n", f"[custom]\nbuilt = v{version}\n", 1))
    (plugin / "crontab").write_text(f"*/5 * * * * echo built v{version}\n")
    done = subprocess.run(["make", "-C", str(plugin), "release"], capture_output=True,
                          text=True, env=tool_env(), stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (artifact,) = plugin.glob(f"hello-{version}-*.plugin")
    return artifact


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_script(argv[0]), *argv[1:]], capture_output=True, text=True,
                          env=tool_env(), stdin=subprocess.DEVNULL, timeout=300)  # fmt: skip


def _state(runtime: Path) -> str:
    """The one version the runtime holds, after checking everything agrees on it."""
    listed = _run("plugins.list", "--json")  # the next command: recovery runs here
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    version = entry["version"]
    assert [p.name for p in (runtime / "plugins").iterdir() if p.name.startswith(".")] == []
    check = _run("plugins.check", "hello")
    assert check.returncode == 0, check.stdout + check.stderr
    venvs = sorted((runtime / "venvs").iterdir())
    assert venvs == [(runtime / "plugins" / "hello" / "local").resolve()]
    block = (runtime / "config" / "crontab").read_text()
    assert f"echo built v{version}" in block and block.count("echo built") == 1, block
    env = _run(
        "plugin_wrapper", "hello", "--", "sh", "-c", "echo $PLUGINS_CURRENT_PLUGIN_CUSTOM_BUILT"
    )
    assert env.stdout.strip() == f"v{version}", env.stderr
    override = runtime / "config" / "plugins" / "hello.ini"
    assert override.read_text() == OPERATOR_EDIT
    archived = sorted((runtime / "archive" / "hello").iterdir()) if (
        runtime / "archive" / "hello").is_dir() else []  # fmt: skip
    if version == "2.0":
        assert len(archived) == 1
        meta = json.loads((archived[0] / ".release" / "metadata.json").read_text())
        assert meta["version"] == "1.0"
    else:
        assert archived == []
    assert not list((runtime / "tmp").glob(".requirements-*"))
    return str(version)


def _timed_upgrade(runtime: Path, artifact: Path) -> tuple[float, float]:
    """(seconds the upgrade takes, seconds until its journal appears)."""
    start = time.monotonic()
    proc = subprocess.Popen([_script("plugins.install"), "--upgrade", str(artifact)],
                            env=tool_env(), stdout=subprocess.DEVNULL)  # fmt: skip
    _journal_seen(runtime, proc)
    journal_at = time.monotonic() - start
    proc.wait(timeout=300)
    duration = time.monotonic() - start
    assert proc.returncode == 0 and journal_at < duration
    return duration, journal_at


def _journal_seen(runtime: Path, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the upgrade's journal exists (its commit has begun) or it has ended."""
    plugins = runtime / "plugins"
    while proc.poll() is None:
        if any(name.startswith(".journal-") for name in os.listdir(plugins)):
            return
        time.sleep(0.001)


def test_sigkill_at_evenly_spaced_moments_of_a_real_upgrade(tmp_path: Path, wheels: Path) -> None:
    v1 = _release(tmp_path / "v1", wheels, "1.0")
    v2 = _release(tmp_path / "v2", wheels, "2.0")
    runtime = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    assert _run("plugins.install", str(v1)).returncode == 0
    (runtime / "config" / "plugins" / "hello.ini").write_text(OPERATOR_EDIT)
    assert _state(runtime) == "1.0"
    pristine = tmp_path / "pristine"
    shutil.copytree(runtime, pristine, symlinks=True)

    def restore() -> None:
        shutil.rmtree(runtime)
        shutil.copytree(pristine, runtime, symlinks=True)

    _timed_upgrade(runtime, v2)  # the first one warms the caches up: time the second
    assert _state(runtime) == "2.0"
    restore()
    duration, journal_at = _timed_upgrade(runtime, v2)
    assert _state(runtime) == "2.0"
    commit = duration - journal_at
    moments = [(duration * k / (WHOLE_POINTS + 1), False) for k in range(1, WHOLE_POINTS + 1)]
    moments += [(commit * k / (COMMIT_POINTS - 1), True) for k in range(COMMIT_POINTS)]

    outcomes = []
    for at, after_journal in moments:
        restore()
        proc = subprocess.Popen(
            [_script("plugins.install"), "--upgrade", str(v2)], env=tool_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        if after_journal:
            _journal_seen(runtime, proc)
        time.sleep(at)
        running = proc.poll() is None
        if running:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        label = f"journal+{at:.3f}s" if after_journal else f"{at:.2f}s"
        outcomes.append((label, running, _state(runtime)))
    killed = [o for o in outcomes if o[1]]
    summary = {
        "upgrade_seconds": round(duration, 3),
        "journal_seconds": round(journal_at, 3),
        "kill_points": len(outcomes),
        "killed_mid_upgrade": len(killed),
        "recovered_to_1.0": sum(o[2] == "1.0" for o in killed),
        "recovered_to_2.0": sum(o[2] == "2.0" for o in killed),
        "kills": outcomes,
    }
    print(json.dumps(summary))
    assert len(killed) >= WHOLE_POINTS, outcomes  # every point of the first series hits
