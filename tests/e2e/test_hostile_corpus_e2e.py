"""The installer against a corpus of hostile variants of a real release.

A plugin rendered from the default template, with a wheel in its wheelhouse, is released
with real `make release`; `tests.support.hostile` turns that artifact into one variant per
attack (manifest recomputed, so only the attack differs). Each variant goes to
`plugins.install --force` over the installed honest version, and to `plugins.info FILE`:
every one must be refused with one ERROR line and no traceback, in bounded memory, and
leave the runtime, the installed plugin and everything outside it as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_templates_e2e import _script
from tests.support import hostile
from tests.support.plugin_dirs import render_default, set_requirements, tool_env

pytestmark = pytest.mark.slow

MARKER = Path("/tmp/hostile-corpus-pwned")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Path:
    src = tmp_path_factory.mktemp("src")
    plugin = render_default(src, "hello")
    set_requirements(plugin, wheels, "alpha==1.0")
    (plugin / "crontab").write_text("*/5 * * * * hello\n")
    done = subprocess.run(["make", "-C", str(plugin), "release"], capture_output=True,
                          text=True, env=tool_env(), stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (artifact,) = plugin.glob("hello-*.plugin")
    return artifact


# Runs one command and prints its peak RSS. Started from this small process, the command's
# peak is its own: a child forked from the test process would count the test's memory too.
_RUNNER = """import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
_pid, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _measured(*argv: str) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in KiB) of a console script."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, _script(argv[0]), *argv[1:]],
        capture_output=True, text=True, env=tool_env(), stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    code, rss = proc.stdout.split()
    return int(code), proc.stderr, int(rss)


def _tree(root: Path, skip: set[Path]) -> set[str]:
    found = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(directory, d) not in skip]
        found.update(os.path.join(directory, name) for name in dirs + files)
    return found


def test_every_hostile_variant_is_refused_and_changes_nothing(
    release: Path, tmp_path: Path
) -> None:
    runtime = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    code, err, honest_rss = _measured("plugins.install", "--force", str(release))
    assert code == 0, err
    skip = {tmp_path / "variants", runtime / "log", runtime / "cache", runtime / "tmp"}
    before = _tree(tmp_path, skip)
    tmp_before = set(os.listdir("/tmp"))
    results = []
    for number, (name, attack, recompute) in enumerate(hostile.variants(release)):
        out = tmp_path / "variants" / f"{number}.plugin"
        out.parent.mkdir(exist_ok=True)
        hostile.build(release, out, attack, recompute)
        code, err, rss = _measured("plugins.install", "--force", str(out))
        lines = err.strip().splitlines()
        clean = code == 1 and len(lines) == 1 and lines[0].startswith("ERROR: ")
        # plugins.info FILE reads the whole archive too: an error line or the description.
        info_code, info_err, info_rss = _measured("plugins.info", str(out))
        clean = clean and info_code in (0, 1) and "Traceback" not in info_err
        rss = max(rss, info_rss)
        results.append({"variant": name, "clean": clean, "rss_kib": rss, "error": err[:300]})
        out.unlink()
        assert _tree(tmp_path, skip) == before, name
    refused = [r for r in results if r["clean"]]
    worst = max(results, key=lambda r: r["rss_kib"])
    summary = {
        "variants": len(results),
        "refused_cleanly": len(refused),
        "honest_install_peak_rss_kib": honest_rss,
        "worst_peak_rss_kib": worst["rss_kib"],
        "worst_variant": worst["variant"],
    }
    print(json.dumps(summary))
    assert [r for r in results if not r["clean"]] == []
    assert len(results) >= 100
    assert not MARKER.exists()
    assert set(os.listdir("/tmp")) - tmp_before <= {
        p for p in os.listdir("/tmp") if p.startswith("pytest")
    }
    check = subprocess.run([_script("plugins.check"), "hello"], capture_output=True, text=True,
                           env=tool_env())  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # Peak memory of any refused variant (a 64 MiB pax header among them) stays close to
    # that of the honest install: no header or metadata is read whole.
    assert worst["rss_kib"] < 2 * honest_rss, summary
