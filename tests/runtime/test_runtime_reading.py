"""Read-only commands share the runtime lock: they wait for writers, and recover debris."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from toolchain.cli.plugins import list_main
from toolchain.core.layout import Runtime
from toolchain.installer import lock
from toolchain.runtime import listing, registry


@pytest.fixture
def rt() -> Runtime:
    return registry.ensure(Runtime.current())


def test_readers_share_the_lock_and_do_not_wait_for_a_writer(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.lock.touch()
    with lock.reading(rt), lock.reading(rt):
        pass  # two readers at once
    monkeypatch.setenv("PLUGIN_LOCK_TIMEOUT", "0.2")
    (rt.plugins / ".staging-web-1234").mkdir()  # the writer's work in progress
    with FileLock(str(rt.lock)):  # a writer, as `locked` takes it
        started = time.monotonic()
        with lock.reading(rt) as got:  # neither waits nor recovers the writer's entries
            assert got == rt and (rt.plugins / ".staging-web-1234").exists()
        assert time.monotonic() - started < 0.2
    with lock.reading(rt) as got:  # the writer gone, its debris is recovered
        assert got == rt and not (rt.plugins / ".staging-web-1234").exists()


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
    with lock.reading(rt):
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

    monkeypatch.setattr(lock, "locked", fake_locked)
    rt.lock.touch()
    with lock.reading(rt):
        pass
    assert calls == []
    (rt.plugins / ".staging-web-1234").mkdir()
    with lock.reading(rt):
        pass
    assert calls == [rt]


def _installed_entry(rt: Runtime, name: str, version: str) -> None:
    home = rt.plugin(name)
    (home / ".release").mkdir(parents=True)
    (home / "config.ini").write_text(f"[general]\nname = {name}\n_version = {version}\n")
    meta = {"name": name, "version": version, "release": "2"}
    (home / ".release" / "metadata.json").write_text(json.dumps(meta))
    (rt.venvs / f"{name}.abc").mkdir()
    (home / "local").symlink_to(rt.venvs / f"{name}.abc")


def test_fast_listing_equals_the_full_one_or_steps_aside(rt: Runtime, tmp_path: Path) -> None:
    rt.lock.touch()
    for name, version in (("web", "1.0"), ("alpha", "2.1"), ("b-2", "0.3")):
        _installed_entry(rt, name, version)
    (rt.plugins / "empty").mkdir()  # no config.ini: not a plugin
    full = [e.as_dict() for e in registry.installed(rt)]
    assert listing.rows() == full and [r["name"] for r in full] == ["alpha", "b-2", "web"]

    (rt.plugins / ".staging-web-1234").mkdir()
    (rt.venvs / "web.new").mkdir()
    with FileLock(str(rt.lock)):  # a writer at work: read around it, not waiting
        assert listing.rows() == full
    (rt.plugins / ".staging-web-1234").rmdir()
    (rt.venvs / "web.new").rmdir()
    (rt.venvs / "orphan.abc").mkdir()  # left by a crash: recovery collects it
    assert listing.rows() is None
    (rt.venvs / "orphan.abc").rmdir()
    source = tmp_path / "src"
    source.mkdir()
    (rt.plugin("dev")).symlink_to(source)  # devlinked: described from its config
    assert listing.rows() is None
    rt.plugin("dev").unlink()
    (rt.plugins / ".journal-1.json").write_text("{}")
    assert listing.rows() is None


def test_list_command_fast_and_full_print_the_same(
    rt: Runtime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.lock.touch()
    _installed_entry(rt, "web", "1.0")
    outputs = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(listing, "rows", lambda: None)
        for args in ([], ["--raw"], ["--json"]):
            assert list_main(args) == 0
            outputs.append(capsys.readouterr().out)
    assert outputs[:3] == outputs[3:]
    assert "web" in outputs[0] and json.loads(outputs[2])[0]["version"] == "1.0"
