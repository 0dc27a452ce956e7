"""Running installed plugins: their cron jobs and daemons follow installs and config changes.

The installer calls `after_install` once a plugin (new or upgraded) is in place and
`before_uninstall` before it removes one; `reload` follows configuration changes. Each
regenerates the runtime's crontab (installed into the user's crontab when
`$PLUGIN_INSTALL_CRONTAB` is set) and the plugin's program files, and, while the runtime's
process manager runs, starts, restarts or stops only that plugin's daemons.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from toolchain.config import layers, schema
from toolchain.config.schema import Raw
from toolchain.core import settings
from toolchain.core.errors import CronError, ToolchainError
from toolchain.core.layout import CONFIG_INI, CRONTAB, Runtime
from toolchain.core.runner import clean_env
from toolchain.core.scripts import console_script
from toolchain.core.settings import config_name, module_name
from toolchain.running import crontab, programs, supervisor
from toolchain.running.daemons import daemons_of
from toolchain.runtime import hostnames, plugin_env, registry


def installed(home: Path) -> list[str]:
    """Names of the plugins installed (or devlinked) in the runtime, sorted."""
    return registry.installed_names(Runtime(home))


def is_devlinked(home: Path, name: str) -> bool:
    """Whether the runtime entry of `name` links to a source directory."""
    return registry.entry_kind(Runtime(home), name) is registry.EntryKind.DEVLINK


def environment(home: Path, name: str) -> dict[str, str]:
    """The plugin env of an installed plugin, as `plugin_wrapper` gives it to its commands.

    Computed here, in-process: running a command in the plugin env would run the plugin's
    own `bin/env` (or whatever its `bin/` shadows) as the operator, at install.
    """
    rt = Runtime(home)
    base = clean_env({settings.RUNTIME_HOME: str(home)})
    return plugin_env.variables(rt, name, rt.plugin(name), base=base)


def effective_config(home: Path, name: str, env: Mapping[str, str]) -> Raw:
    """The daemon sections of an installed plugin, as its plugin env `env` configures them.

    Private keys come from the plugin's own `config.ini` (no override may change them);
    the others from the plugin env, which holds every override layer already.
    """
    path = Runtime(home).plugin(name) / CONFIG_INI
    merged = layers.merge([layers.read_raw(path)], config_name())
    module = module_name()
    daemon_sections: Raw = {}
    for section, keys in merged.items():
        if not section.startswith(schema.DAEMON_PREFIX):
            continue
        values = dict(keys)
        for key in schema.DAEMON:
            exported = env.get(layers.env_var_name(module, section, key))
            if exported is not None and not key.startswith("_"):
                values[key] = exported
        daemon_sections[section] = values
    return layers.render(daemon_sections, env, path)


def programs_of(home: Path, name: str) -> programs.PluginPrograms:
    """What the process manager runs for an installed plugin."""
    plugin_dir = Runtime(home).plugin(name)
    raw = layers.read_raw(plugin_dir / CONFIG_INI)
    if not any(section.startswith(schema.DAEMON_PREFIX) for section in raw):
        return programs.PluginPrograms(name, plugin_dir, [], False, "")
    env = environment(home, name)
    merged = effective_config(home, name, env)
    daemons = daemons_of(name, merged)
    # Restart when the configuration, the plugin's exported variables or its tree (an
    # upgrade, a version swapped back: the inode of plugins/NAME) change; a worker resolves
    # its host names when it starts.
    prefix = layers.env_var_name(module_name(), "", "").rstrip("_")
    exported = {  # not the resolved addresses: a DNS rotation is no configuration change
        k: v for k, v in env.items() if k.startswith(prefix) and not hostnames.is_address(k)
    }
    state = json.dumps([merged, exported, plugin_dir.stat().st_ino], sort_keys=True).encode()
    digest = hashlib.sha256(state).hexdigest()[:16]
    return programs.PluginPrograms(
        plugin=name,
        plugin_dir=Runtime(home).plugin(name),
        daemons=daemons,
        watch=bool(daemons) and is_devlinked(home, name),
        digest=digest,
        group=programs.configured_group(home, name) or name,  # the slot it runs in
    )


def cron_jobs(home: Path, name: str) -> list[crontab.Job]:
    """The rendered jobs of an installed plugin's `crontab` (none without one)."""
    path = Runtime(home).plugin(name) / CRONTAB
    if not path.is_file():
        return []
    where = f"plugin {name}: {path}"
    text = crontab.read(path, where)
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        return []
    return crontab.parse(text, environment(home, name), where)


def regenerate_crontab(home: Path, skip: Iterable[str] = ()) -> Path:
    """Rewrite the runtime's crontab from the installed plugins (but `skip`).

    A plugin whose crontab cannot be rendered keeps its previous block; the first such
    problem is raised once every other plugin's block is written.
    """
    skipped = set(skip)
    path = crontab.crontab_file(home)
    previous = path.read_text(encoding="utf-8") if path.is_file() else ""
    plugin_cron = console_script("plugin_cron")
    seconds = settings.cron_timeout(CronError)
    blocks: dict[str, list[str]] = {}
    problems: list[ToolchainError] = []
    for name in installed(home):
        if name in skipped:
            continue
        try:
            jobs = cron_jobs(home, name)
        except ToolchainError as exc:
            problems.append(exc)
            blocks[name] = _previous_block(home, name, previous)
            continue
        blocks[name] = crontab.plugin_block(home, name, jobs, plugin_cron, seconds)
    crontab.write_runtime_crontab(home, blocks)
    if settings.install_crontab():
        crontab.install_user_crontab(home)
    if problems:
        raise problems[0]
    return path


def _previous_block(home: Path, name: str, text: str) -> list[str]:
    begin, end = crontab.markers(home, name)
    lines = text.splitlines()
    if begin in lines and end in lines:
        return lines[lines.index(begin) : lines.index(end) + 1]
    return []


def _sync_programs(home: Path, names: Iterable[str]) -> list[ToolchainError]:
    problems: list[ToolchainError] = []
    for name in names:
        try:
            programs.write_plugin(home, programs_of(home, name))
        except ToolchainError as exc:
            problems.append(exc)
    return problems


def _finish(problems: list[ToolchainError]) -> None:
    if problems:
        raise problems[0]


def _follow(
    home: Path,
    problems: list[ToolchainError],
    plugins: Iterable[str] | None,
    *,
    apply: bool = True,
    restart: bool = False,
    skip: Iterable[str] = (),
) -> None:
    """A running process manager follows `plugins`' programs, the crontab is regenerated;
    every problem met on the way is raised at the end (the first one)."""
    if apply and supervisor.is_running(home):
        try:
            supervisor.apply(home, plugins, restart=restart)
        except ToolchainError as exc:
            problems.append(exc)
    try:
        regenerate_crontab(home, skip=skip)
    except ToolchainError as exc:
        problems.append(exc)
    _finish(problems)


def after_install(name: str, home: Path | None = None, *, restart: bool = True) -> None:
    """Hook run once plugin `name` is installed or upgraded: cron jobs and daemons follow
    (restarted, unless `restart` is False and their program files did not change)."""
    home = home or Runtime.current().home
    problems = _sync_programs(home, [name])
    _follow(home, problems, [name], apply=not problems, restart=restart)


def before_uninstall(name: str, home: Path | None = None) -> None:
    """Hook run before plugin `name` is removed: its daemons stop, its cron jobs go."""
    home = home or Runtime.current().home
    programs.remove_plugin(home, name)
    _follow(home, [], [name], skip=[name])


def reload(home: Path | None = None) -> None:
    """Follow configuration changes: regenerate every plugin's cron jobs and programs.

    While the process manager runs, daemons whose configuration changed are restarted
    and those of plugins no longer installed are stopped.
    """
    home = home or Runtime.current().home
    names = installed(home)
    for stale in set(programs.configured_plugins(home)) - set(names):
        programs.remove_plugin(home, stale)
    _follow(home, _sync_programs(home, names), None)


def start(home: Path | None = None) -> bool:
    """Start the process manager with every plugin's daemons; False if already running."""
    home = home or Runtime.current().home
    names = installed(home)
    for stale in set(programs.configured_plugins(home)) - set(names):
        programs.remove_plugin(home, stale)
    problems = _sync_programs(home, names)
    started = supervisor.start(home)
    if not started:
        supervisor.apply(home)
    _finish(problems)
    return started


def stop(home: Path | None = None) -> bool:
    """Stop every daemon and the process manager; False if it was not running."""
    return supervisor.stop(home or Runtime.current().home)
