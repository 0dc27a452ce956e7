"""Cron jobs: a plugin's `crontab` rendered into the runtime's crontab, between markers.

A plugin's `crontab` holds cron lines whose `{{VAR}}` placeholders are rendered from the
plugin env. Each command is wrapped so that it runs through `plugin_cron` (lock, timeout,
log file), which runs it through `plugin_wrapper` (plugin env). The runtime keeps the
lines of every plugin in one generated file, each plugin's block between begin and end
markers; when asked, that file's blocks are installed into the user's crontab with the
`crontab` command, leaving every line outside this runtime's markers untouched.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolchain.core import settings
from toolchain.core.errors import CronError

_SPECIAL = {"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"}
_SPECIAL |= {"@hourly"}
_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")
_UNESCAPED_PERCENT = re.compile(r"(?<!\\)%")
# Every character str.splitlines() breaks a line at.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


@dataclass(frozen=True)
class Job:
    """One cron line of a plugin: its schedule and its shell command, rendered."""

    schedule: str
    command: str
    options: tuple[str, ...] = ()  # plugin_cron's options, from the line's prefix


def split_prefix(command: str, where: str) -> tuple[tuple[str, ...], str]:
    """(plugin_cron options, command) of a crontab command `--low --nice 5 -- CMD`.

    A command that does not start with `--` has none: no shell command starts so.
    """
    if not command.startswith("--"):
        return (), command
    from toolchain.running.cron_job import OPTIONS, canonical

    words = re.split(r"[ \t]+", command)
    options: list[str] = []
    while words and words[0] != "--":
        word = words.pop(0)
        if word not in OPTIONS:
            known = ", ".join(sorted(OPTIONS))
            raise CronError(
                f"{where}: unknown plugin_cron option {word!r} before the command ({known}); "
                "end the options with ` -- `"
            )
        options.append(word)
        check = OPTIONS[word][0]
        if check is not None:
            if not words or words[0] == "--":
                raise CronError(f"{where}: plugin_cron option {word} needs a value")
            value = words.pop(0)
            try:
                options.append(canonical(check(value)))
            except ValueError as exc:
                raise CronError(f"{where}: {exc}") from None
    if not words:
        raise CronError(f"{where}: end plugin_cron's options with ` -- ` before the command")
    rest = re.split(r"(?:^|[ \t]+)--(?:[ \t]+|$)", command, maxsplit=1)[1].strip(" \t")
    if not rest:
        raise CronError(f"{where}: no command after plugin_cron's options")
    return tuple(options), rest


def crontab_file(home: Path) -> Path:
    """The runtime's generated crontab."""
    return home / "config" / "crontab"


def markers(home: Path, plugin: str) -> tuple[str, str]:
    """The begin and end marker lines of `plugin`'s block in the runtime `home`."""
    return (
        f"# BEGIN plugin {plugin} of runtime {home}",
        f"# END plugin {plugin} of runtime {home}",
    )


def _render_line(line: str, env: Mapping[str, str], where: str) -> str:
    if "{{" not in line and "{%" not in line:
        return line
    import jinja2
    from jinja2 import meta

    from toolchain.config.layers import template_environment

    environment = template_environment()
    try:
        tree = environment.parse(line)
    except jinja2.TemplateSyntaxError as exc:
        raise CronError(f"{where}: invalid placeholder: {exc.message}") from None
    missing = sorted(meta.find_undeclared_variables(tree) - set(env))
    if missing:
        raise CronError(
            f"{where}: variable {missing[0]} is not defined in the plugin env; "
            "fix the placeholder or set it in the configuration"
        )
    try:
        return str(environment.from_string(tree).render(dict(env)))
    except jinja2.TemplateError as exc:
        raise CronError(f"{where}: cannot render: {exc}") from None


def read(path: Path, source: str) -> str:
    """A plugin's crontab as cron reads it: bytes decoded, no newline translated (a text-mode
    read would turn a lone "\r" into a line end and hide a second job in one line)."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CronError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse(text: str, env: Mapping[str, str], source: str) -> list[Job]:
    """Render and parse a plugin's crontab text; comments and blank lines are dropped."""
    jobs = []
    # Lines end at "\n" (or "\r\n") as cron reads them; any other character that
    # str.splitlines() breaks at is refused below rather than taken as a line end.
    for number, raw in enumerate(text.split("\n"), start=1):
        where = f"{source}:{number}"
        raw = raw.removesuffix("\r")
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        line = _render_line(raw.strip(" \t"), env, where)
        breaks = sorted({f"U+{ord(c):04X}" for c in line if c in _LINE_BREAKS})
        if breaks:  # str.splitlines, and so the user's crontab, would start a new line there
            raise CronError(
                f"{where}: the line holds a line break ({', '.join(breaks)}); "
                "remove it from the line or from the value its placeholder renders"
            )
        if _ASSIGNMENT.match(line):
            raise CronError(
                f"{where}: variable assignments would apply to every plugin's jobs; "
                "use the plugin's configuration instead"
            )
        fields = line.split(None, 1 if line.startswith("@") else 5)
        count = 1 if line.startswith("@") else 5
        if len(fields) <= count:
            raise CronError(f"{where}: expected a schedule and a command: {line!r}")
        schedule, command = fields[:count], fields[count].strip()
        if line.startswith("@") and schedule[0] not in _SPECIAL:
            raise CronError(f"{where}: unknown schedule {schedule[0]!r}")
        if not line.startswith("@") and not all(_FIELD.match(f) for f in schedule):
            raise CronError(f"{where}: invalid schedule {' '.join(schedule)!r}")
        if _UNESCAPED_PERCENT.search(command):
            raise CronError(f"{where}: cron turns '%' into a newline: write it as '\\%'")
        options, command = split_prefix(command, where)
        jobs.append(Job(" ".join(schedule), command, options))
    return jobs


def wrap(
    plugin: str,
    job: Job,
    plugin_cron: Path,
    seconds: int,
    environment: Mapping[str, str] | None = None,
) -> str:
    """The cron line that runs `job` through `plugin_cron` in the plugin env.

    Cron starts it with an almost empty environment: the settings it needs (`environment`,
    the runtime's home first of all) are written into the line as `NAME=value` words for
    the shell cron runs it with; `%`, which cron turns into a newline, is escaped.
    """
    argv = [str(plugin_cron), plugin, "--timeout", str(seconds), *job.options]
    argv += ["--", "/bin/sh", "-c"]
    assigned = "".join(
        f"{key}={shlex.quote(value)} " for key, value in sorted((environment or {}).items())
    ).replace("%", "\\%")
    return f"{job.schedule} {assigned}{shlex.join(argv)} {shlex.quote(job.command)}"


def plugin_block(
    home: Path, plugin: str, jobs: Sequence[Job], plugin_cron: Path, seconds: int
) -> list[str]:
    """The marked block of `plugin` (empty when it has no job), for the runtime `home`."""
    if not jobs:
        return []
    environment = {**settings.passed_to_daemons(), settings.RUNTIME_HOME: str(home)}
    begin, end = markers(home, plugin)
    lines = (wrap(plugin, job, plugin_cron, seconds, environment) for job in jobs)
    return [begin, *lines, end]


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_runtime_crontab(home: Path, blocks: Mapping[str, list[str]]) -> Path:
    """Write the runtime's crontab from each plugin's block, sorted by plugin name."""
    lines = [f"# Generated for the plugins of runtime {home}; do not edit."]
    for plugin in sorted(blocks):
        lines += blocks[plugin]
    path = crontab_file(home)
    _atomic_write(path, "\n".join(lines) + "\n")
    return path


def strip_runtime_blocks(home: Path, text: str) -> list[str]:
    """The lines of a crontab without the blocks of runtime `home` (others kept as written)."""
    begin_prefix, end_prefix = "# BEGIN plugin ", "# END plugin "
    suffix = f" of runtime {home}"
    kept: list[str] = []
    inside: str | None = None
    for line in text.splitlines():
        if inside is None and line.startswith(begin_prefix) and line.endswith(suffix):
            inside = line[len(begin_prefix) : -len(suffix)]
            continue
        if inside is not None:
            if line == f"{end_prefix}{inside}{suffix}":
                inside = None
            continue
        kept.append(line)
    return kept


def _crontab(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["crontab", *args], input=stdin, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise CronError(
            f"cannot run crontab: {exc.strerror}; install cron or unset PLUGIN_INSTALL_CRONTAB"
        ) from None


def read_user_crontab() -> str:
    """The user's crontab (empty when the user has none)."""
    proc = _crontab(["-l"])
    if proc.returncode != 0:
        if "no crontab" in (proc.stderr + proc.stdout).lower():
            return ""
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CronError(f"crontab -l failed (exit {proc.returncode}): {tail[0]}")
    return proc.stdout


def install_user_crontab(home: Path) -> bool:
    """Put the runtime's blocks into the user's crontab; True when it changed."""
    current = read_user_crontab()
    kept = strip_runtime_blocks(home, current)
    ours = (
        [
            line
            for line in crontab_file(home).read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("# Generated")
        ]
        if crontab_file(home).is_file()
        else []
    )
    while kept and not kept[-1].strip():
        kept.pop()
    wanted = "\n".join(kept + ours) + "\n" if kept or ours else ""
    if wanted == current or (not wanted and not current.strip()):
        return False
    proc = _crontab(["-"], stdin=wanted)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CronError(f"crontab - failed (exit {proc.returncode}): {tail[0]}")
    return True
