"""Installing, upgrading, devlinking and uninstalling plugins, each as one transaction.

An install stages every file beside its target (`swap.staging_path`), validates it,
builds its virtualenv offline from the artifact's wheelhouse at its final place under
`venvs/` (a virtualenv must not move: its scripts embed absolute paths), links the
plugin's `local` to it, runs `postinstall` in the plugin env, and only then commits all
the staged plugins at once with `swap.commit`. Any failure before the commit removes the
staging entries and their virtualenvs and leaves the runtime as it was.

The files given are resolved first (`repository.plan`): missing or too old dependencies
come from a repository directory and are staged, before their requirers, in the same
transaction. A replaced installed version is moved to the runtime's archive.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain import (
    archive,
    artifact,
    config,
    overrides,
    plugin_env,
    repository,
    resolve,
    runtime,
    staging,
    swap,
)
from toolchain.errors import (
    ArtifactError,
    ConfigError,
    InstallError,
    InvalidName,
    NotInstalled,
    ToolchainError,
    UsageError,
)
from toolchain.extract import extract
from toolchain.layout import (
    CONFIG_INI,
    METADATA,
    Runtime,
)
from toolchain.names import check_name

log = logging.getLogger(__name__)

DEFAULT, UPGRADE, FORCE = "default", "upgrade", "force"
STRATEGIES = (DEFAULT, UPGRADE, FORCE)


@dataclass(frozen=True)
class Change:
    """What one install did to one plugin, for the command's report."""

    name: str
    version: str
    release: str
    previous: str | None  # "VERSION-RELEASE" of the replaced plugin, if any

    def __str__(self) -> str:
        new = f"{self.version}-{self.release}"
        if self.previous is None:
            return f"installed {self.name} {new}"
        return f"replaced {self.name} {self.previous} with {new}"


@dataclass(frozen=True)
class Step:
    """One file of a transaction, with the strategy it is installed with."""

    file: Path
    strategy: str = DEFAULT
    new_name: str | None = None


def _key(version: str, release: str) -> tuple[Any, int]:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version), int(release)
    except (InvalidVersion, ValueError):
        raise InstallError(f"installed version {version}-{release} is not comparable") from None


def _stage(
    runtime_: Runtime, file: Path, tid: str, strategy: str, new_name: str | None, taken: set[str]
) -> staging.Staged:
    if not file.is_file():
        raise ArtifactError(f"{file}: no such file")
    top = artifact.read_head(file)[0]
    name = new_name or top
    try:
        check_name(name)
    except InvalidName as exc:
        raise InstallError(f"{file}: {exc}") from None
    if name in taken:
        raise UsageError(f"{file}: plugin {name} is given twice")
    taken.add(name)
    _check_strategy(runtime_, name, strategy, None)  # fail early, before any work
    staged = staging.Staged(name, swap.staging_path(runtime_, name, tid))
    got = extract(file, staged.path)
    staging.check_metadata(got.metadata, got.top, file)
    cfg_path = staged.path / CONFIG_INI
    try:
        raw = config.read_raw(cfg_path)
        config.validate(raw, f"{file}: {CONFIG_INI}")
    except ConfigError as exc:
        raise ArtifactError(str(exc)) from None
    if raw["general"]["name"] != got.top:
        raise ArtifactError(f"{file}: {CONFIG_INI} names {raw['general']['name']!r}, not {top!r}")
    if name != got.top:
        staging.rewrite_name(staged.path, got.top, name)
    staging.check_overrides(runtime_, name)
    _check_strategy(runtime_, name, strategy, got.metadata)
    record = {
        "installed_from": str(file.absolute()),
        "installed_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (staged.path / runtime.INSTALL_RECORD).write_bytes(artifact.dumps(record))
    staging.build_venv(runtime_, staged, tid)
    staging.postinstall(runtime_, staged)
    return staged


def _check_strategy(
    runtime_: Runtime, name: str, strategy: str, meta: dict[str, Any] | None
) -> None:
    if not runtime.entry_exists(runtime_, name) or strategy == FORCE:
        return
    if strategy == DEFAULT:
        raise InstallError(
            f"plugin {name} is already installed in {runtime_.home}: use --upgrade, --force "
            "or --new-name"
        )
    if meta is None:
        return
    try:
        current = runtime.describe(runtime_, name)
    except NotInstalled:
        return  # a broken entry: replacing it is an upgrade
    new = _key(meta["version"], meta["release"])
    if new <= _key(current.version, current.release):
        raise InstallError(
            f"plugin {name} {current.version}-{current.release} is installed, and "
            f"{meta['version']}-{meta['release']} is not newer; use --force to replace it"
        )


def _previous(runtime_: Runtime, name: str) -> str | None:
    if not runtime.entry_exists(runtime_, name):
        return None
    try:
        current = runtime.describe(runtime_, name)
    except ToolchainError:
        return "?"
    return f"{current.version}-{current.release}"


def abort(rt: Runtime, tid: str) -> None:
    """After a failure before the commit: drop the staging entries and their virtualenvs."""
    _abort(rt, tid)


def _abort(rt: Runtime, tid: str) -> None:
    """After a failure: without a journal nothing was committed, staging is debris."""
    if (rt.plugins / f"{swap.JOURNAL}{tid}.json").exists():
        return  # the commit was decided: the next command completes it
    try:
        for leftover in rt.plugins.glob(f"{swap.STAGING}*-{tid}"):
            swap.drop(leftover)
    except OSError as exc:
        log.warning("%s: staging entries left for the next command: %s", rt.plugins, exc)
    runtime.collect_venvs(rt)


def _steps(actions: Sequence[resolve.Action], strategy: str, new_name: str | None) -> list[Step]:
    steps = []
    for action in actions:
        source = action.candidate.source
        assert source is not None  # the resolver installs only candidates from files
        if action.kind == resolve.UPGRADE:  # a dependency too old: replaced by a newer one
            steps.append(Step(source, UPGRADE))
        elif action.reasons:  # a missing dependency
            steps.append(Step(source, DEFAULT))
        else:
            steps.append(Step(source, strategy, new_name))
    return steps


def _check_arguments(files: Sequence[Path], strategy: str, new_name: str | None) -> None:
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if not files:
        raise UsageError("no .plugin file given")
    if new_name is not None and len(files) != 1:
        raise UsageError("--new-name takes exactly one .plugin file")


def plan(
    files: Sequence[Path],
    *,
    new_name: str | None = None,
    repository_dir: Path | None = None,
    runtime_: Runtime | None = None,
) -> list[resolve.Action]:
    """What `install` would do with these arguments, dependencies first (a dry run)."""
    _check_arguments(files, DEFAULT, new_name)
    rt = runtime_ or Runtime.current()
    with runtime.locked(rt):
        return repository.plan(rt, files, repository_dir, new_name)


def install(
    files: Sequence[Path],
    *,
    strategy: str = DEFAULT,
    new_name: str | None = None,
    repository_dir: Path | None = None,
    runtime_: Runtime | None = None,
) -> list[Change]:
    """Install `.plugin` files and what they require, all or nothing; return what changed."""
    _check_arguments(files, strategy, new_name)
    rt = runtime_ or Runtime.current()
    with runtime.locked(rt):
        actions = repository.plan(rt, files, repository_dir, new_name)
        return transaction(rt, _steps(actions, strategy, new_name))


def transaction(rt: Runtime, steps: Sequence[Step]) -> list[Change]:
    """Stage every step, then commit them together; the caller holds the runtime lock."""
    tid = swap.new_id()
    staged: list[staging.Staged] = []
    taken: set[str] = set()
    changes: list[Change] = []
    try:
        for step in steps:
            item = _stage(rt, Path(step.file), tid, step.strategy, step.new_name, taken)
            staged.append(item)
            meta = runtime.read_json(item.path / METADATA)
            changes.append(
                Change(item.name, meta["version"], meta["release"], _previous(rt, item.name))
            )
        moves = [
            swap.Move(
                s.name, s.path, swap.backup_path(rt, s.name, tid), archive.slot(rt, s.name, tid)
            )
            for s in staged
        ]
        swap.commit(rt, tid, moves)
    except BaseException:
        _abort(rt, tid)
        raise
    runtime.collect_venvs(rt)
    for item in staged:
        archive.prune(rt, item.name)
        finalize(rt, item.name)
    return changes


def devlink(source_dir: Path, *, force: bool = False, runtime_: Runtime | None = None) -> str:
    """Install `source_dir` in development mode: the runtime entry links to it."""
    source = source_dir.absolute()
    cfg = config.load(source / CONFIG_INI)
    name = cfg.name
    rt = runtime_ or Runtime.current()
    with runtime.locked(rt):
        target = rt.plugin(name)
        if target.is_symlink() and Path(os.readlink(target)) == source:
            finalize(rt, name)
            return name
        if runtime.entry_exists(rt, name) and not force:
            raise InstallError(
                f"plugin {name} is already installed in {rt.home}: use --force to replace it "
                f"with a link to {source}"
            )
        staging.check_overrides(rt, name)
        tid = swap.new_id()
        link = swap.staging_path(rt, name, tid)
        try:
            link.symlink_to(source, target_is_directory=True)
            swap.commit(rt, tid, [swap.Move(name, link, swap.backup_path(rt, name, tid))])
        except BaseException:
            _abort(rt, tid)
            raise
        runtime.collect_venvs(rt)
        finalize(rt, name)
    return name


def uninstall(
    name: str, *, clean: bool = False, force: bool = False, runtime_: Runtime | None = None
) -> bool:
    """Remove plugin `name` (only the link of a devlinked one); True if it was devlinked."""
    rt = runtime_ or Runtime.current()
    with runtime.locked(rt):
        if not runtime.entry_exists(rt, name):
            raise NotInstalled(f"plugin {name!r} is not installed in {rt.home}")
        needed_by = [] if force else repository.requirers(rt, name)
        if needed_by:
            raise InstallError(
                f"plugin {name} is required by {', '.join(needed_by)}; uninstall "
                f"{'them' if len(needed_by) > 1 else 'it'} first, or use --force"
            )
        linked = rt.plugin(name).is_symlink()
        _hook("before_uninstall", rt, name)
        tid = swap.new_id()
        swap.commit(rt, tid, [swap.Move(name, None, swap.backup_path(rt, name, tid))])
        runtime.collect_venvs(rt)
        plugin_env.drop_cache(rt, name)
        if clean:
            rt.override(name).unlink(missing_ok=True)
    return linked


def _hook(which: str, rt: Runtime, name: str) -> None:
    from toolchain import services

    try:
        getattr(services, which)(name, rt.home)
    except ToolchainError as exc:
        log.warning("plugin %s: cron jobs and daemons not updated: %s", name, exc)


def finalize(rt: Runtime, name: str) -> None:
    """After a commit: create the override file if absent, start cron jobs and daemons."""
    overrides.write_template(rt, name)
    _hook("after_install", rt, name)
