"""`plugin-build check` (`make check`): a plugin directory checked, nothing built."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.plugin_dirs import tool_env
from toolchain.build import template
from toolchain.cli import bootstrap
from toolchain.cli.build import main

TEMPLATES = [t.name for t in template.available()]


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One plugin per template, made by `bootstrap_plugin.py create --no-input` once."""
    parent = tmp_path_factory.mktemp("created")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(parent)
        for name in TEMPLATES:
            argv = ["create", "--no-input", "--set", "ci=none", "--template", name, name]
            assert bootstrap.main(argv) == 0
    yield parent


def _copy(created: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(created / name, tmp_path / name, symlinks=True))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def svc(created: Path, tmp_path: Path) -> Path:
    """The daemon template's plugin, with 3 workers and 2 cron jobs using its variables."""
    root = _copy(created, tmp_path, "daemon")
    _edit(root / "config.ini", "numprocesses = 1", "numprocesses = 3")
    with (root / "crontab").open("a") as crontab:
        crontab.write("*/5 * * * * ls {{PLUGINS_CURRENT_PLUGIN_DIR}} >/dev/null\n")
        crontab.write("@daily sleep {{PLUGINS_CURRENT_PLUGIN_CUSTOM_INTERVAL}}\n")
    return root


def run_check(
    root: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, str, list[str]]:
    """`plugin-build [options] -C root check`: (exit code, stdout, stderr lines); and
    nothing is built, in the plugin nor in the runtime."""
    before = _files(root)
    code = main([*options, "-C", str(root), "check"])
    out, err = capsys.readouterr()
    assert _files(root) == before
    assert not (root / "local").exists()
    assert not (root / "python3_virtualenv_sources" / "requirements3.txt").exists()
    assert not (root.parent / "runtime").exists()  # $PLUGIN_RUNTIME_HOME (tests/conftest.py)
    return code, out, err.splitlines()


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_passes(
    created: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = run_check(_copy(created, tmp_path, name), capsys)
    assert (code, err) == (0, [])
    assert out.startswith(f"ok: {name} 0.1.0-1: config.ini, ") and out.count("\n") == 1


def test_a_good_plugin_is_summed_up(svc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(svc, capsys)
    assert (code, err) == (0, [])
    assert out == (
        "ok: daemon 0.1.0-1: config.ini, 2 cron jobs, 1 daemon (3 workers), postinstall, "
        "healthcheck\n"
    )
    code, out, err = run_check(svc, capsys, "--json")
    doc = json.loads(out)
    assert (code, err, doc["step"], doc["status"], doc["problems"]) == (0, [], "check", "ok", [])
    assert (doc["name"], doc["version"], doc["release"]) == ("daemon", "0.1.0", "1")
    assert doc["cron_jobs"] == 2
    assert doc["daemons"] == [{"name": "main", "numprocesses": 3, "listen": None}]


def test_a_hostname_is_not_resolved(svc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Its address variable (runtime.hostnames) is there for the crontab, with no DNS asked.
    _edit(svc / "config.ini", "interval = 5", "interval = 5\ndb_hostname = db.invalid")
    with (svc / "crontab").open("a") as crontab:
        crontab.write("@hourly ping -c1 {{PLUGINS_CURRENT_PLUGIN_CUSTOM_DB_HOSTNAME_IP}}\n")
    code, out, err = run_check(svc, capsys)
    assert (code, err) == (0, [])
    assert "3 cron jobs" in out


# (file, old, new, the problem's line after the path)
BREAKAGES = {
    "config": (
        "config.ini", "_release = 1", "_release = zero",
        "config.ini: [general] _release: 'zero' is not an integer",
    ),
    "crontab": (
        "crontab", "@daily", "@often",
        "crontab:6: unknown schedule '@often'",
    ),
    "numprocesses": (
        "config.ini", "numprocesses = 3", "numprocesses = 0",
        "config.ini: [extra_daemon_main] numprocesses: 0 is below the minimum 1",
    ),
    "postinstall": (
        "postinstall", "", "",
        "postinstall: not executable; run chmod +x ",
    ),
    "command": (
        "config.ini", "_cmd_and_args = daemon", "_cmd_and_args = daemon 'unclosed",
        "config.ini: [extra_daemon_main] _cmd_and_args: No closing quotation",
    ),
    "health_url": (
        "config.ini", "graceful_timeout = 10", "graceful_timeout = 10\nhealthcheck_url = /up",
        "config.ini: [extra_daemon_main] healthcheck_url: '/up' is a path on the daemon's "
        "listen address, and it has none: add `listen = HOST:PORT` or write a full URL",
    ),
    "template": (
        "config.ini", "interval = 5", "interval = {{ NOPE }}",
        "config.ini: [custom] interval: cannot render: 'NOPE' is undefined",
    ),
}  # fmt: skip


def _break(root: Path, what: str) -> str:
    """Break `root` as BREAKAGES[what] says; the problem line `check` must print."""
    file, old, new, said = BREAKAGES[what]
    if file == "postinstall":
        (root / file).chmod(0o644)
    else:
        _edit(root / file, old, new)
    return f"{root}/{said}"


@pytest.mark.parametrize("what", sorted(BREAKAGES))
def test_a_problem_is_named(svc: Path, capsys: pytest.CaptureFixture[str], what: str) -> None:
    said = _break(svc, what)
    code, out, err = run_check(svc, capsys)
    assert (code, out) == (1, "")
    assert len(err) == 2 and err[0].startswith(said), err
    assert err[1] == f"ERROR: plugin daemon: 1 problem in {svc}; fix them and check again"


def test_every_problem_is_named_at_once(svc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    said = [_break(svc, what) for what in ("config", "numprocesses", "crontab", "postinstall")]
    code, out, err = run_check(svc, capsys)
    assert code == 1 and len(err) == 5
    assert all(line.startswith(start) for line, start in zip(err, said, strict=False)), err
    assert err[-1].startswith("ERROR: plugin daemon: 4 problems in ")
    code, out, err = run_check(svc, capsys, "--json")
    doc = json.loads(out)
    assert (code, doc["status"], doc["problems"]) == (1, "failed", err[:4])


def test_a_missing_general_section_is_named_once(
    svc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (svc / "config.ini").write_text("[custom]\na = 1\n")
    code, _out, err = run_check(svc, capsys)
    assert code == 1 and sum("missing section [general]" in line for line in err) == 1, err


def test_make_check(created: Path, tmp_path: Path) -> None:
    """The real `make check`, through the toolchain's installed console scripts."""
    root = _copy(created, tmp_path, "default")
    before = _files(root)

    def make_check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-C", str(root), "check"],
            capture_output=True, text=True, env=tool_env(), stdin=subprocess.DEVNULL,
        )  # fmt: skip

    proc = make_check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: default 0.1.0-1: config.ini, 0 cron jobs, no daemon, postinstall\n" in proc.stdout
    (root / "postinstall").chmod(0o644)
    proc = make_check()
    assert proc.returncode == 2  # make's own status when a recipe fails
    assert "postinstall: not executable; run chmod +x postinstall" in proc.stderr
    assert _files(root) == before
