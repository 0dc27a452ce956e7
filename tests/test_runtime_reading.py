"""Read-only commands share the runtime lock: they wait for writers, and recover debris."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from toolchain import runtime
from toolchain.errors import LockTimeout
from toolchain.layout import Runtime


@pytest.fixture
def rt() -> Runtime:
    return runtime.ensure(Runtime.current())


def test_readers_share_the_lock_and_wait_for_a_writer(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.lock.touch()
    with runtime.reading(rt), runtime.reading(rt):
        pass  # two readers at once
    monkeypatch.setenv("PLUGIN_LOCK_TIMEOUT", "0.2")
    with FileLock(str(rt.lock)):  # a writer, as `locked` takes it
        with pytest.raises(LockTimeout, match="still holds the runtime lock"):
            with runtime.reading(rt):
                pass
    with runtime.reading(rt) as got:
        assert got == rt


def test_a_reader_blocks_a_writer(rt: Runtime, tmp_path: Path) -> None:
    rt.lock.touch()
    code = textwrap.dedent(
        f"""
        from filelock import FileLock, Timeout
        try:
            FileLock({str(rt.lock)!r}, timeout=0.2).acquire()
        except Timeout:
            print("waited")
        """
    )
    with runtime.reading(rt):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout == "waited\n", out.stderr


def test_debris_of_an_interrupted_command_takes_the_recovering_lock(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    @contextmanager
    def fake_locked(runtime_: Runtime) -> Iterator[Runtime]:
        calls.append(runtime_)
        yield runtime_

    monkeypatch.setattr(runtime, "locked", fake_locked)
    rt.lock.touch()
    with runtime.reading(rt):
        pass
    assert calls == []
    (rt.plugins / ".staging-web-1234").mkdir()
    with runtime.reading(rt):
        pass
    assert calls == [rt]
