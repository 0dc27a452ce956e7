"""`plugin_cron`: one job run with its lock, its timeout and its log file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from toolchain.cli.cron import main as cron_main
from toolchain.core.errors import CronError
from toolchain.running import cron_job

# Stands in for plugin_wrapper: `wrapper NAME -- CMD...` runs CMD with a marker variable.
FAKE_WRAPPER = """#!/bin/sh
name="$1"; shift; shift
export IN_PLUGIN_ENV="$name"
exec "$@"
"""


@pytest.fixture
def wrapper(tmp_path: Path) -> Path:
    path = tmp_path / "fake_wrapper"
    path.write_text(FAKE_WRAPPER, encoding="utf-8")
    path.chmod(0o755)
    return path


def test_output_and_status_go_to_the_plugin_log(tmp_path: Path, wrapper: Path) -> None:
    home = tmp_path / "rt"
    cmd = ["/bin/sh", "-c", 'echo "out $IN_PLUGIN_ENV"; echo err >&2; exit 3']
    assert cron_job.run_job(home, "hello", cmd, wrapper=wrapper, timeout=0) == 3
    log = cron_job.log_file(home, "hello").read_text()
    assert "out hello\nerr\n" in log
    assert " start pid " in log
    assert " end exit 3 after " in log


def test_timeout_terminates_the_process_group(tmp_path: Path, wrapper: Path) -> None:
    home = tmp_path / "rt"
    marker = tmp_path / "grandchild"
    # The grandchild would create the marker if it outlived the timeout.
    cmd = ["/bin/sh", "-c", f"(sleep 30; touch {marker}) & sleep 30"]
    status = cron_job.run_job(home, "hello", cmd, wrapper=wrapper, timeout=0.5)
    assert status == cron_job.TIMED_OUT
    assert "timeout after 0.5s" in cron_job.log_file(home, "hello").read_text()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert f"touch {marker}" not in ps.stdout


def test_overlapping_run_is_skipped_unless_no_lock(tmp_path: Path, wrapper: Path) -> None:
    home = tmp_path / "rt"
    cmd = ["/bin/sh", "-c", "echo ran"]
    from filelock import FileLock

    lock_path = cron_job.lock_file(home, "hello", cmd)
    lock_path.parent.mkdir(parents=True)
    with FileLock(str(lock_path)):
        assert cron_job.run_job(home, "hello", cmd, wrapper=wrapper, timeout=0) == 0
        log = cron_job.log_file(home, "hello").read_text()
        assert "skipped (previous run still running)" in log
        assert " start pid " not in log
        assert cron_job.run_job(home, "hello", cmd, wrapper=wrapper, timeout=0, lock=False) == 0
    assert "ran\n" in cron_job.log_file(home, "hello").read_text()


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cron_main(["hello", "--"]) == 2
    assert "no command given" in capsys.readouterr().err
    for bad in (["--timeout", "-1"], ["--nice", "x"], ["--ionice", "idle:2"]):
        with pytest.raises(SystemExit) as exited:
            cron_main(["hello", *bad, "--", "true"])
        assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout: '-1' is not a number of seconds" in err
    assert "--nice x: give a niceness from -20 to 19" in err
    assert "--ionice idle:2: only best-effort and realtime take a level" in err


def test_an_ionice_that_cannot_run_is_one_line_and_starts_nothing(
    tmp_path: Path, wrapper: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "rt"
    monkeypatch.setenv("PATH", str(tmp_path / "no-util-linux"))
    with pytest.raises(CronError, match=r"^--ionice idle: cannot run ionice .*install util-linux$"):
        cron_job.run_job(home, "hello", ["/bin/sh", "-c", "echo ran"], wrapper=wrapper,
                         timeout=0, ionice=(3, None))  # fmt: skip
    log = cron_job.log_file(home, "hello").read_text()
    assert " not started: --ionice idle: cannot run ionice" in log and " start pid " not in log


def test_random_sleep_waits_at_most_its_bound(tmp_path: Path, wrapper: Path) -> None:
    home = tmp_path / "rt"
    for _ in range(3):
        cron_job.run_job(home, "hello", ["true"], wrapper=wrapper, timeout=0, random_sleep=0.2)
    slept = re.findall(
        r"after a random sleep of ([0-9.]+)s", cron_job.log_file(home, "hello").read_text()
    )
    assert len(slept) == 3
    assert all(0 <= float(s) <= 0.2 for s in slept)
