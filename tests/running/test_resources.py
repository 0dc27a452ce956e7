"""A worker's figures read from /proc, summed over its process group, on real processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolchain.running import resources

# A worker as gunicorn-like servers are: it opens files, holds 64 MiB, forks a child that
# burns CPU, then runs three threads (the fork comes first: a child gets only one thread).
WORKER = """import os, sys, threading
files = [open(sys.argv[1]) for _ in range(5)]
block = b"x" * (64 * 2**20)
if os.fork() == 0:
    while True:
        pass
done = threading.Event()
for _ in range(2):
    threading.Thread(target=done.wait, daemon=True).start()
print("ready", flush=True)
done.wait()
"""

# Sleeps; its command name (comm) holds a space and ')', as /proc/PID/stat shows it.
ODD_NAME = """import time
with open("/proc/self/comm", "w") as comm:
    comm.write("x) (y z")
print("ready", flush=True)
time.sleep(600)
"""


def _leader(script: Path, code: str, *args: str) -> subprocess.Popen[str]:
    """A python process leading its own process group, as supervisord starts a worker."""
    script.write_text(code, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test; their groups killed at the end."""
    import os
    import signal

    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_workers_figures_add_up_its_process_group(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    opened = tmp_path / "opened.txt"
    opened.write_text("a file the worker holds open\n")
    busy = _leader(tmp_path / "worker.py", WORKER, str(opened))
    started.append(busy)
    quiet = _leader(tmp_path / "odd.py", ODD_NAME)
    started.append(quiet)
    gone = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    gone.wait()

    found = resources.sample([busy.pid, quiet.pid, gone.pid])

    assert set(found) == {busy.pid, quiet.pid, gone.pid}
    worker = found[busy.pid]
    assert worker is not None
    assert worker.processes == 2  # the worker and its fork, nothing else
    assert worker.threads >= 3
    assert worker.open_files >= 5
    assert worker.rss_bytes >= 50 * 10**6
    assert worker.cpu_percent > 0 and worker.cpu_seconds > 0
    odd = found[quiet.pid]
    assert odd is not None  # its fields are read after the last ')' of its name
    assert odd.processes == 1 and odd.threads == 1 and odd.rss_bytes > 0
    assert found[gone.pid] is None
    assert set(worker.as_dict()) == {
        "cpu_seconds", "cpu_percent", "rss_bytes", "threads", "open_files", "processes"
    }  # fmt: skip


def test_a_group_member_that_vanishes_is_left_out(
    tmp_path: Path, started: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = _leader(tmp_path / "worker.py", WORKER, str(tmp_path / "worker.py"))
    started.append(busy)
    real = resources._memory_and_files

    def child_gone(pid: int) -> tuple[int, int] | None:
        return None if pid != busy.pid else real(pid)

    monkeypatch.setattr(resources, "_memory_and_files", child_gone)
    worker = resources.sample([busy.pid], window=0.01)[busy.pid]
    assert worker is not None and worker.processes == 1 and worker.threads == 3
    # The worker itself unreadable (its fork still there): the worker has no figures.
    monkeypatch.setattr(
        resources, "_memory_and_files", lambda pid: None if pid == busy.pid else real(pid)
    )
    assert resources.sample([busy.pid], window=0.01) == {busy.pid: None}


def test_no_worker_no_wait_and_no_proc_no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    with monkeypatch.context() as patched:
        patched.setattr(time, "sleep", lambda s: pytest.fail("slept with nothing to measure"))
        assert resources.sample([0, 0]) == {}
    monkeypatch.setattr(resources, "PROC", "/nonexistent-proc")
    assert resources.sample([os.getpid()], window=0.01) == {os.getpid(): None}
