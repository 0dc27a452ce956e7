"""What a plugin directory will run, checked before anything is built (`make check`).

`config.ini` against the schema, every `[extra_daemon_*]` section as the process manager
reads it, the `crontab` rendered with the plugin's variables, and the `postinstall` and
`healthcheck` scripts. Every problem is collected, not only the first: a developer fixes
them in one go. Nothing is written, neither in the plugin directory nor in the runtime:
the plugin need not be installed, so its env is composed here from its own configuration
and the current environment (no override file, no inherited plugin).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.config import layers, schema
from toolchain.config.schema import Raw
from toolchain.core import listen, names, settings
from toolchain.core.errors import ConfigError, CronError, InvalidName
from toolchain.core.layout import CONFIG_INI, CRONTAB, POSTINSTALL, Runtime
from toolchain.running import crontab
from toolchain.running.daemons import Daemon, daemons_of
from toolchain.running.health import HEALTHCHECK
from toolchain.runtime import envcache, hostnames

# [general] given to the schema with another section alone, so that each section's problem
# is found even when [general] has one of its own (reported once, by itself).
_STAND_IN_GENERAL = {"name": "plugin", "_version": "0"}


@dataclass
class Report:
    """What `check` found in a plugin directory."""

    root: Path
    name: str
    version: str = ""
    release: str = ""
    problems: list[str] = field(default_factory=list)
    cron_jobs: int | None = None  # None: no crontab
    daemons: list[Daemon] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)  # postinstall, healthcheck: present

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """`NAME VERSION-RELEASE: config.ini, 2 cron jobs, 1 daemon (3 workers)`."""
        parts = [CONFIG_INI]
        jobs = self.cron_jobs
        parts.append("no crontab" if jobs is None else _count(jobs, "cron job"))
        if self.daemons:
            workers = _count(sum(d.numprocesses for d in self.daemons), "worker")
            parts.append(f"{_count(len(self.daemons), 'daemon')} ({workers})")
        else:
            parts.append("no daemon")
        return f"{self.name} {self.version}-{self.release}: {', '.join(parts + self.scripts)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "release": self.release,
            "ok": self.ok,
            "problems": self.problems,
            "cron_jobs": self.cron_jobs,
            "daemons": [
                {"name": d.name, "numprocesses": d.numprocesses, "listen": d.listen or None}
                for d in self.daemons
            ],
            "scripts": self.scripts,
        }


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'' if number == 1 else 's'}"


def check(root: Path) -> Report:
    """Check the plugin directory `root`; paths in the problems are as `root` is written."""
    report = Report(root=root, name=root.absolute().name)
    found = _config(report)
    if found is not None:
        config, broken = found
        env = _plugin_variables(report, config)
        _daemons(report, {s: keys for s, keys in config.items() if s not in broken})
        _crontab(report, env)
    for script in (POSTINSTALL, HEALTHCHECK):
        _script(report, script)
    return report


def _validated(raw: Raw, path: Path, problems: list[str]) -> Raw:
    """The sections of `raw` the schema accepts; one problem for each other section."""
    good: Raw = {}
    general = raw.get("general")
    try:
        schema.validate({"general": general} if general is not None else raw, path)
        good["general"] = dict(general or {})
    except ConfigError as exc:
        problems.append(str(exc))
    for section, keys in raw.items():
        if section == "general" or (general is None and section.lower() == "general"):
            continue  # a [General] is named in the problem of the missing [general]
        try:
            schema.validate({"general": _STAND_IN_GENERAL, section: keys}, path)
        except ConfigError as exc:
            problems.append(str(exc))
        else:
            good[section] = keys
    if general is not None and len(good) == len(raw):
        try:  # any rule across sections, which the checks one by one cannot see
            schema.validate(raw, path)
        except ConfigError as exc:
            problems.append(str(exc))
    return good


def _config(report: Report) -> tuple[Raw, set[str]] | None:
    """The configuration merged and rendered, without the sections the schema refuses; and
    the sections holding a value that does not render. None when config.ini cannot be read
    at all."""
    path = report.root / CONFIG_INI
    try:
        raw = layers.read_raw(path)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return None
    try:  # the plugin's name even when [general] has a problem elsewhere
        report.name = names.check_name(raw.get("general", {}).get("name", ""))
    except InvalidName:
        pass
    merged = layers.merge([_validated(raw, path, report.problems)], settings.config_name())
    if "general" in merged:
        general = merged["general"]
        report.version, report.release = general["_version"], general["_release"]
    context = dict(os.environ) | _own_variables(report)
    rendered: Raw = {}
    broken: set[str] = set()
    for section, keys in merged.items():
        rendered[section] = dict(keys)
        for key, value in keys.items():  # one by one: each value's problem, and no other
            try:
                rendered[section] |= layers.render({section: {key: value}}, context, path)[section]
            except ConfigError as exc:
                # Its variable keeps the value as written: the crontab may use it.
                report.problems.append(str(exc))
                broken.add(section)
    return rendered, broken


def _own_variables(report: Report) -> dict[str, str]:
    """`{MODULE}_CURRENT_PLUGIN_NAME` and `_DIR`, which templated values may use."""
    prefix = layers.env_var_name(settings.module_name(), "", "").rstrip("_")
    return {f"{prefix}_NAME": report.name, f"{prefix}_DIR": str(report.root.absolute())}


def _plugin_variables(report: Report, config: Raw) -> dict[str, str]:
    """The plugin env as `runtime.plugin_env` composes it for this directory, less what
    only an installed plugin has (override files, inherited plugins), and without creating
    the runtime's tmp directory that `TMPDIR` names. Host names stand in for their
    addresses: no name is resolved here (no network, and the names of the machine the
    plugin is for need not resolve on the developer's)."""
    module = settings.module_name()
    exported = layers.exported(config, module)
    exported |= hostnames.addresses(report.name, config, module, resolver=lambda name: name)
    home = str(Runtime.current().home)
    here = str(report.root.absolute())
    return envcache.compose(os.environ, home, report.name, here, config, exported, make_tmp=False)


def _daemons(report: Report, config: Raw) -> None:
    """Each daemon section as the process manager reads it, and its health URL."""
    path = report.root / CONFIG_INI
    for section, keys in sorted(config.items()):
        if not section.startswith(schema.DAEMON_PREFIX):
            continue
        try:
            found = daemons_of(report.name, {section: keys})
        except ConfigError as exc:
            said = str(exc).removeprefix(f"plugin {report.name}: ")
            report.problems.append(f"{path}: {said}; correct the value")
            continue
        url = keys.get("healthcheck_url", "").strip()
        try:
            listen.health_url(url, keys.get("listen", "").strip())
        except ValueError:
            report.problems.append(
                f"{path}: [{section}] healthcheck_url: {url!r} is a path on the daemon's "
                "listen address, and it has none: add `listen = HOST:PORT` or write a full URL"
            )
            continue
        report.daemons += found


def _crontab(report: Report, env: dict[str, str]) -> None:
    """Every line of the crontab rendered and parsed, each problem with its line number."""
    path = report.root / CRONTAB
    if not path.is_file():
        return
    try:
        text = crontab.read(path, str(path))
    except CronError as exc:
        report.problems.append(str(exc))
        return
    except OSError as exc:
        report.problems.append(f"{path}: cannot read it: {exc.strerror}; check its permissions")
        return
    try:
        report.cron_jobs = len(crontab.parse(text, env, str(path)))
        return
    except CronError:
        pass  # find every bad line, not only the first
    jobs = 0
    for number, line in enumerate(text.split("\n")):
        # Blank lines before it, which the parser skips, keep the line's number.
        try:
            jobs += len(crontab.parse("\n" * number + line, env, str(path)))
        except CronError as exc:
            report.problems.append(str(exc))
    report.cron_jobs = jobs


def _script(report: Report, name: str) -> None:
    """`postinstall` or `healthcheck`, when present, must be an executable file."""
    path = report.root / name
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_file():
        what = "a broken symbolic link" if path.is_symlink() else "not a file"
        report.problems.append(f"{path}: {what}; make it an executable file or remove it")
    elif not os.access(path, os.X_OK):
        report.problems.append(f"{path}: not executable; run chmod +x {path}")
    else:
        report.scripts.append(name)
