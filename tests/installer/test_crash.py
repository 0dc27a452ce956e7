"""Crash safety: every step of install, upgrade and uninstall fails or is SIGKILLed in turn.

Whatever the step, the next command leaves the plugin fully old or fully new: its files
match its manifest, its `local` link points at its own virtualenv, and no staging,
backup, journal or orphaned virtualenv remains.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.plugin_factory import build_plugin
from toolchain.cli.plugins import check_main, install_main, list_main, uninstall_main
from toolchain.core import settings
from toolchain.core.layout import METADATA, Runtime
from toolchain.installer import journal, stage
from toolchain.runtime.registry import read_json

BIN = Path(sys.executable).parent
STEPS = ("exchange", "rename", "drop", "write_journal", "remove_journal")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("artifacts")
    return {v: build_plugin(d, "hello", v) for v in ("1.0", "2.0")}


def version(rt: Runtime) -> str | None:
    """The installed version of `hello`, after checking it is whole; None when absent."""
    assert list_main(["--raw"]) == 0  # the next command: recovery runs here
    assert sorted(p.name for p in rt.plugins.iterdir() if p.name.startswith(".")) == []
    venvs = sorted(rt.venvs.iterdir())
    if not rt.plugin("hello").exists():
        assert venvs == []
        return None
    assert check_main(["hello"]) == 0
    assert venvs == [(rt.plugin("hello") / "local").resolve()]
    return str(read_json(rt.plugin("hello") / METADATA)["version"])


class Faults:
    """Counts the swap steps and makes the `fail_at`-th one raise OSError."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self.fail_at = 0
        for name in STEPS:
            monkeypatch.setattr(journal, name, self._wrap(name, getattr(journal, name)))

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any) -> Any:
            self.calls.append(name)
            if len(self.calls) == self.fail_at:
                raise OSError(28, f"injected failure at {name}")
            return real(*args)

        return step

    def arm(self, fail_at: int) -> None:
        self.calls = []
        self.fail_at = fail_at


def _fake_venv(dest: Path, requirements: Path | None, **_kw: object) -> None:
    (dest / "bin").mkdir(parents=True)


OPERATIONS: dict[str, tuple[str | None, Callable[[dict[str, Path]], int], str | None]] = {
    # name: (version installed first, operation, version it brings)
    "install": (None, lambda a: install_main([str(a["1.0"])]), "1.0"),
    "upgrade": ("1.0", lambda a: install_main(["--upgrade", str(a["2.0"])]), "2.0"),
    "uninstall": ("1.0", lambda a: uninstall_main(["hello"]), None),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_each_failing_step_leaves_old_or_new(
    operation: str,
    artifacts: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stage.venv, "build", _fake_venv)
    faults = Faults(monkeypatch)
    before, run, after = OPERATIONS[operation]

    def fresh(label: str) -> Runtime:
        monkeypatch.setenv("PLUGIN_RUNTIME_HOME", str(tmp_path / label))
        rt = Runtime.current()
        faults.arm(0)
        if before:
            assert install_main([str(artifacts[before])]) == 0
        return rt

    rt = fresh("dry-run")
    faults.arm(0)
    assert run(artifacts) == 0
    steps = list(faults.calls)
    committed = steps.index("write_journal") + 1  # once it is written, the new state wins
    assert version(rt) == after

    for k in range(1, len(steps) + 1):
        rt = fresh(f"fail-{k}")
        faults.arm(k)
        run(artifacts)
        faults.arm(0)
        expected = before if k <= committed else after
        assert version(rt) == expected, (k, steps[k - 1])


@pytest.mark.parametrize("two_step", [False, True], ids=["exchange", "no-exchange-fs"])
def test_an_upgrade_never_leaves_the_entry_missing(
    artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch, two_step: bool
) -> None:
    """After every filesystem step of an upgrade, `plugins/hello` is one whole version.

    A cron job or daemon starting at any moment of the swap finds the plugin; on a
    filesystem without the atomic exchange, the swap falls back to two renames (and the
    entry is missing between them: the case is here to show the fallback still commits).
    """
    rt = Runtime.current()
    _install_v1(rt, artifacts)
    seen: list[tuple[str, str | None]] = []
    entry = rt.plugin("hello")
    if two_step:
        monkeypatch.setattr(journal, "exchange", lambda a, b: False, raising=False)

    def watch(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any) -> Any:
            result = real(*args)
            meta = entry / METADATA
            seen.append((name, str(read_json(meta)["version"]) if meta.is_file() else None))
            return result

        return step

    for name in STEPS:
        if hasattr(journal, name):
            monkeypatch.setattr(journal, name, watch(name, getattr(journal, name)))
    assert install_main(["--upgrade", str(artifacts["2.0"])]) == 0
    assert version(rt) == "2.0"
    missing = [step for step, found in seen if found is None]
    if two_step:
        assert missing == ["rename"]
    else:
        assert missing == [], seen
        assert [v for _, v in seen if v] == sorted(v for _, v in seen if v)  # 1.0s then 2.0s


def _install_v1(rt: Runtime, artifacts: dict[str, Path]) -> None:
    assert install_main([str(artifacts["1.0"])]) == 0
    assert version(rt) == "1.0"


def _run_killed(args: list[str], **env: str) -> int:
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env={**os.environ, **env},
        capture_output=True,
        start_new_session=True,
        timeout=120,
    )
    return proc.returncode


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ("journal-written", "2.0"),
        ("entries-exchanged", "2.0"),
        ("staging-renamed", "2.0"),
        ("journal-removed", "2.0"),
    ],
)
def test_sigkill_during_upgrade_is_recovered(
    artifacts: dict[str, Path], point: str, expected: str
) -> None:
    rt = Runtime.current()
    _install_v1(rt, artifacts)
    code = _run_killed(
        ["plugins.install", "--upgrade", str(artifacts["2.0"])], **{settings.FAILPOINT: point}
    )
    assert code == -signal.SIGKILL
    assert version(rt) == expected


@pytest.mark.parametrize("point", ["journal-written", "backup-renamed"])
def test_sigkill_during_uninstall_is_recovered(artifacts: dict[str, Path], point: str) -> None:
    rt = Runtime.current()
    _install_v1(rt, artifacts)
    code = _run_killed(["plugins.uninstall", "hello"], **{settings.FAILPOINT: point})
    assert code == -signal.SIGKILL
    assert version(rt) is None


def test_sigkill_while_postinstall_runs_keeps_the_old_version(tmp_path: Path) -> None:
    rt = Runtime.current()
    marker = tmp_path / "postinstall-started"
    slow = f"#!/bin/sh\ntouch {marker}\nsleep 60\n"
    v1 = build_plugin(tmp_path, "hello", "1.0")
    v2 = build_plugin(tmp_path, "hello", "2.0", postinstall=slow)
    assert install_main([str(v1)]) == 0
    proc = subprocess.Popen(
        [str(BIN / "plugins.install"), "--upgrade", str(v2)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    staged = [p.name for p in rt.plugins.iterdir() if p.name.startswith(journal.STAGING)]
    assert len(staged) == 1 and len(list(rt.venvs.iterdir())) == 2
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert version(rt) == "1.0"


def test_recovery_without_journal_reverts_and_with_journal_completes(
    artifacts: dict[str, Path], tmp_path: Path
) -> None:
    rt = Runtime.current()
    _install_v1(rt, artifacts)
    # moved aside with no journal (nothing committed): the old plugin comes back
    journal.rename(rt.plugin("hello"), journal.backup_path(rt, "hello", "aaaa"))
    (journal.staging_path(rt, "hello", "aaaa") / "bin").mkdir(parents=True)
    (rt.venvs / "hello.orphan").mkdir()
    assert version(rt) == "1.0"
    # a journal that names a complete staging entry (here a devlink): the commit is finished
    source = tmp_path / "other"
    source.mkdir()
    (source / "config.ini").write_text("[general]\nname = other\n_version = 3\n")
    staging = journal.staging_path(rt, "other", "bbbb")
    staging.symlink_to(source)
    move = journal.Move("other", staging, journal.backup_path(rt, "other", "bbbb"))
    journal.write_journal(rt, "bbbb", [move])
    (rt.plugins / f"{journal.JOURNAL}cccc.json.tmp").write_text("[")
    assert version(rt) == "1.0"
    assert rt.plugin("other").resolve() == source and not staging.is_symlink()
    assert sorted(p.name for p in rt.plugins.iterdir()) == ["hello", "other"]


def test_recovery_drops_what_killed_commands_leave_beside_their_entries(tmp_path: Path) -> None:
    import shutil

    from tests.support.plugin_factory import build_plugin as build

    rt = Runtime.current()
    assert install_main([str(build(tmp_path, "hello", "1.0"))]) == 0
    assert install_main(["--upgrade", str(build(tmp_path, "hello", "2.0"))]) == 0
    slot = rt.archive / "hello" / "99999999999999999999-restored"
    shutil.copytree(rt.plugin("hello"), slot, symlinks=True)  # a rollback killed after commit
    (rt.tmp / ".requirements-hello-dead.txt").write_text("alpha==1.0\n")  # a killed install
    (rt.cache / "env").mkdir(parents=True, exist_ok=True)
    (rt.cache / "env" / "gone.json").write_text("{}")  # a killed uninstall's cache
    (rt.cache / "env" / "gone.marshal").write_bytes(b"")
    assert check_main(["hello"]) == 0  # any command that takes the lock recovers
    assert not slot.exists()
    assert [p.name for p in (rt.archive / "hello").iterdir()] != []  # 1.0 is still archived
    assert not list(rt.tmp.glob(".requirements-*"))
    assert not list((rt.cache / "env").glob("gone.*"))


@pytest.mark.parametrize(
    ("operation", "point"),
    [
        ("upgrade", "hooks-pending"),  # entries swapped, cron and daemons not told yet
        ("upgrade", "journal-removed"),
        ("uninstall", "before-hooks-ran"),  # cron block gone, the plugin still there
        ("uninstall", "hooks-pending"),
    ],
)
def test_a_kill_between_the_swap_and_its_hooks_is_finished_by_recovery(
    tmp_path: Path, operation: str, point: str
) -> None:
    from tests.support.plugin_factory import build_plugin as build

    rt = Runtime.current()
    cron = "@hourly echo {v}\n"
    assert install_main([str(build(tmp_path, "hello", "1.0", crontab=cron.format(v="v1")))]) == 0
    new = build(tmp_path, "hello", "2.0", crontab=cron.format(v="v2"))
    argv = ["plugins.install", "--upgrade", str(new)]
    if operation == "uninstall":
        argv = ["plugins.uninstall", "hello"]
    assert _run_killed(argv, **{settings.FAILPOINT: point}) == -signal.SIGKILL
    installed = version(rt)  # the next command recovers, hooks included
    table = (rt.home / "config" / "crontab").read_text()
    if operation == "upgrade":
        assert installed == "2.0" and "echo v2" in table and "echo v1" not in table
        assert rt.override("hello").is_file()
    else:
        assert installed is None and "hello" not in table
        assert not list((rt.cache / "env").glob("hello.*"))
