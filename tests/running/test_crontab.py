"""A plugin's crontab: rendering, wrapping, the runtime's marked blocks, the user's crontab."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.support.cron_fixtures import install_fake_crontab
from toolchain.core import settings
from toolchain.core.errors import CronError
from toolchain.running import crontab

ENV = {"PLUGINS_CURRENT_PLUGIN_DIR": "/opt/p/hello", "PLUGINS_CURRENT_PLUGIN_NAME": "hello"}
TEXT = """# a comment

*/5 * * * * {{PLUGINS_CURRENT_PLUGIN_DIR}}/bin/hello --name {{ PLUGINS_CURRENT_PLUGIN_NAME }}
   # an indented comment
@daily date +\\%Y >/dev/null 2>&1
"""


def test_parse_drops_comments_and_renders_placeholders() -> None:
    jobs = crontab.parse(TEXT, ENV, "hello/crontab")
    assert jobs == [
        crontab.Job("*/5 * * * *", "/opt/p/hello/bin/hello --name hello"),
        crontab.Job("@daily", "date +\\%Y >/dev/null 2>&1"),
    ]


def test_missing_variable_is_named() -> None:
    with pytest.raises(CronError, match=r"hello/crontab:2: variable NOPE is not defined"):
        crontab.parse("# x\n0 * * * * echo {{NOPE}}\n", ENV, "hello/crontab")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 * * * ! echo", "invalid schedule"),
        ("0 * * *", "expected a schedule and a command"),
        ("@sometimes echo", "unknown schedule"),
        ("MAILTO=me", "variable assignments"),
        ("0 * * * * date +%Y", "write it as"),
        ("0 * * * * echo {{ x", "invalid placeholder"),
    ],
)
def test_bad_lines_are_errors_naming_the_line(line: str, problem: str) -> None:
    with pytest.raises(CronError, match=rf"c:1: .*{problem}"):
        crontab.parse(line, ENV, "c")


def test_wrapped_line_runs_through_plugin_cron() -> None:
    job = crontab.Job("0 1 * * *", "echo 'hi there' | tee x")
    line = crontab.wrap("hello", job, Path("/venv/bin/plugin_cron"), 60)
    schedule, command = line[:9], line[10:]
    assert schedule == "0 1 * * *"
    assert shlex.split(command) == [
        "/venv/bin/plugin_cron",
        "hello",
        "--timeout",
        "60",
        "--",
        "/bin/sh",
        "-c",
        "echo 'hi there' | tee x",
    ]


def test_a_prefix_of_options_goes_to_plugin_cron() -> None:
    text = "0 1 * * * --low\t--random-sleep 30  --no-lock -- echo -- 'a  b'\n"
    [job] = crontab.parse(text, ENV, "c")
    assert job == crontab.Job("0 1 * * *", "echo -- 'a  b'", ("--low", "--random-sleep", "30",
                                                              "--no-lock"))  # fmt: skip
    line = crontab.wrap("hello", job, Path("/venv/bin/plugin_cron"), 60)
    assert shlex.split(line[10:]) == [
        "/venv/bin/plugin_cron", "hello", "--timeout", "60", "--low", "--random-sleep", "30",
        "--no-lock", "--", "/bin/sh", "-c", "echo -- 'a  b'",
    ]  # fmt: skip
    [job] = crontab.parse("@daily --nice 5 --ionice best-effort:7 --timeout 9 -- run", ENV, "c")
    assert job.options == ("--nice", "5", "--ionice", "best-effort:7", "--timeout", "9")
    assert crontab.parse("@daily -- run", ENV, "c") == [crontab.Job("@daily", "run")]
    # Values as plugin_cron's parser reads them again: int() and float() take more.
    [job] = crontab.parse("@daily --nice -1_0 --timeout -0e0 --ionice 2:7 -- run", ENV, "c")
    assert job.options == ("--nice", "-10", "--timeout", "-0", "--ionice", "best-effort:7")
    from toolchain.cli.cron import build_parser

    argv = shlex.split(crontab.wrap("p", job, Path("/bin/plugin_cron"), 60)[10:])
    parsed = build_parser().parse_args(argv[1 : argv.index("--")])
    assert (parsed.nice, parsed.timeout, parsed.ionice) == (-10, 0.0, (2, 7))


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("--lwo -- run", "unknown plugin_cron option '--lwo'"),
        ("--nice 20 -- run", "--nice 20: give a niceness from -20 to 19"),
        ("--nice -- run", "option --nice needs a value"),
        ("--ionice idle:3 -- run", "only best-effort and realtime take a level"),
        ("--ionice fast -- run", "the class is idle, best-effort, realtime or none"),
        ("--ionice \u00b2 -- run", "--ionice \u00b2: the class is idle, best-effort"),
        ("--random-sleep soon -- run", "'soon' is not a number of seconds"),
        ("--low run", "unknown plugin_cron option 'run'"),
        ("--low", "end plugin_cron's options with ` -- `"),
        ("--low -- ", "no command after plugin_cron's options"),
    ],
)
def test_a_bad_prefix_is_an_error_naming_the_line(command: str, problem: str) -> None:
    with pytest.raises(CronError, match=rf"^c:2: .*{re.escape(problem)}"):
        crontab.parse(f"# jobs\n*/5 * * * * {command}\n", ENV, "c")


def test_runtime_crontab_holds_marked_blocks(tmp_path: Path) -> None:
    home = tmp_path / "rt"
    jobs = [crontab.Job("@hourly", "true")]
    blocks = {
        "zeta": crontab.plugin_block(home, "zeta", jobs, Path("/b/plugin_cron"), 5),
        "alpha": crontab.plugin_block(home, "alpha", jobs, Path("/b/plugin_cron"), 5),
        "empty": crontab.plugin_block(home, "empty", [], Path("/b/plugin_cron"), 5),
    }
    lines = crontab.write_runtime_crontab(home, blocks).read_text().splitlines()
    assert lines[0].startswith("# Generated")
    assert lines[1] == f"# BEGIN plugin alpha of runtime {home}"
    # the runtime's home travels in the line: cron's environment has none of ours
    assert lines[2].startswith(
        f"@hourly PLUGIN_RUNTIME_HOME={home} /b/plugin_cron alpha --timeout 5 -- /bin/sh -c true"
    )
    assert lines[3] == f"# END plugin alpha of runtime {home}"
    assert lines[4] == f"# BEGIN plugin zeta of runtime {home}"
    assert len(lines) == 7


def test_strip_keeps_foreign_lines_and_other_runtimes(tmp_path: Path) -> None:
    home, other = tmp_path / "rt", tmp_path / "other"
    b1, e1 = crontab.markers(home, "a")
    b2, e2 = crontab.markers(other, "a")
    text = "\n".join(["MAILTO=x", b1, "job1", e1, "0 0 * * * mine", b2, "job2", e2]) + "\n"
    assert crontab.strip_runtime_blocks(home, text) == [
        "MAILTO=x",
        "0 0 * * * mine",
        b2,
        "job2",
        e2,
    ]


def test_user_crontab_gets_blocks_and_keeps_foreign_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = install_fake_crontab(tmp_path, monkeypatch)
    home = tmp_path / "rt"
    table.write_text("# mine\n0 0 * * * /usr/bin/backup\n")
    block = crontab.plugin_block(home, "a", [crontab.Job("@hourly", "x")], Path("/pc"), 5)
    crontab.write_runtime_crontab(home, {"a": block})
    assert settings.install_crontab()
    assert crontab.install_user_crontab(home)
    assert table.read_text().splitlines() == ["# mine", "0 0 * * * /usr/bin/backup", *block]
    assert not crontab.install_user_crontab(home)  # unchanged: not rewritten

    crontab.write_runtime_crontab(home, {})
    assert crontab.install_user_crontab(home)
    assert table.read_text().splitlines() == ["# mine", "0 0 * * * /usr/bin/backup"]


def test_user_crontab_created_when_the_user_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = install_fake_crontab(tmp_path, monkeypatch)
    home = tmp_path / "rt"
    block = crontab.plugin_block(home, "a", [crontab.Job("@hourly", "x")], Path("/pc"), 5)
    crontab.write_runtime_crontab(home, {"a": block})
    assert crontab.install_user_crontab(home)
    assert table.read_text().splitlines() == block


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.cron_timeout(CronError) == settings.DEFAULT_CRON_TIMEOUT
    monkeypatch.setenv("PLUGIN_CRON_TIMEOUT", "30")
    assert settings.cron_timeout(CronError) == 30
    monkeypatch.setenv("PLUGIN_CRON_TIMEOUT", "soon")
    with pytest.raises(CronError, match="PLUGIN_CRON_TIMEOUT"):
        settings.cron_timeout(CronError)


@pytest.mark.parametrize(
    "separator", ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"]
)
def test_a_rendered_line_break_of_any_kind_is_refused(separator: str) -> None:
    env = {**ENV, "EVIL": f"x{separator}SHELL=/tmp/evil{separator}* * * * * /tmp/evil"}
    with pytest.raises(CronError, match=rf"line break \(U\+{ord(separator):04X}"):
        crontab.parse("0 * * * * echo {{EVIL}}\n", env, "hello/crontab")


@pytest.mark.parametrize(
    "separator", ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"]
)
def test_a_line_break_other_than_newline_in_the_file_is_refused(separator: str) -> None:
    """cron ends lines at "\\n" only: another break would hide a second job in one line."""
    text = f"0 * * * * true{separator}* * * * * touch /tmp/evil\n"
    with pytest.raises(
        CronError, match=rf"hello/crontab:1: .*line break \(U\+{ord(separator):04X}"
    ):
        crontab.parse(text, ENV, "hello/crontab")


def test_windows_line_ends_are_line_ends() -> None:
    jobs = crontab.parse("0 * * * * true\r\n5 * * * * false\r\n", ENV, "hello/crontab")
    assert [(j.schedule, j.command) for j in jobs] == [
        ("0 * * * *", "true"),
        ("5 * * * *", "false"),
    ]


def test_the_file_is_read_as_cron_reads_it(tmp_path: Path) -> None:
    """A text-mode read turns a lone "\\r" into a line end: the second job would pass."""
    path = tmp_path / "crontab"
    path.write_bytes(b"0 * * * * true\r* * * * * touch /tmp/evil\n")
    with pytest.raises(CronError, match=r"line break \(U\+000D"):
        crontab.parse(crontab.read(path, "hello/crontab"), ENV, "hello/crontab")
    path.write_bytes(b"0 * * * * caf\xe9\n")
    with pytest.raises(CronError, match="hello/crontab: not UTF-8 text"):
        crontab.read(path, "hello/crontab")
