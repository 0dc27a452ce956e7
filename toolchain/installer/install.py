"""Installing, upgrading, devlinking and uninstalling plugins, each as one transaction.

An install stages every file beside its target (`journal.staging_path`), validates it,
builds its virtualenv offline from the artifact's wheelhouse at its final place under
`venvs/` (a virtualenv must not move: its scripts embed absolute paths), links the
plugin's `local` to it, runs `postinstall` in the plugin env, and only then commits all
the staged plugins at once with `journal.commit`. Any failure before the commit removes the
staging entries and their virtualenvs and leaves the runtime as it was.

The files given are resolved first (`repository.plan`): missing or too old dependencies come
from a repository directory, staged before their requirers in the same transaction. A
replaced version goes to the runtime's archive; signatures are checked (`trust`).

These take the `Runtime` whose lock the caller holds (`lock.locked`, once per command).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from toolchain.artifact import read, signature, spec
from toolchain.artifact.extract import extract
from toolchain.config import layers, schema
from toolchain.core.errors import (
    ArtifactError,
    ConfigError,
    InstallError,
    InvalidName,
    NotInstalled,
    ToolchainError,
    UsageError,
)
from toolchain.core.layout import CONFIG_INI, INSTALL_RECORD, METADATA, VENV, Runtime
from toolchain.core.names import check_name
from toolchain.installer import (
    archive,
    gate,
    hooks,
    journal,
    pins,
    recovery,
    repository,
    resolve,
    stage,
    trust,
)
from toolchain.runtime import plugin_env, registry

log = logging.getLogger(__name__)


class Strategy(Enum):
    """What to do when a plugin of that name is installed already."""

    DEFAULT = "default"  # refuse
    UPGRADE = "upgrade"  # replace it only with a newer version
    FORCE = "force"  # replace it whatever its version


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
    strategy: Strategy = Strategy.DEFAULT
    new_name: str | None = None


def _key(version: str, release: str) -> tuple[Any, int]:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version), int(release)
    except (InvalidVersion, ValueError):
        raise InstallError(f"installed version {version}-{release} is not comparable") from None


def _stage(
    runtime_: Runtime,
    file: Path,
    tid: str,
    strategy: Strategy,
    new_name: str | None,
    taken: set[str],
    others: Mapping[str, Path] | None = None,
) -> stage.Staged:
    """Extract, check and prepare one plugin; `others`: the trees staged before it in the
    same transaction (its dependencies), which its postinstall inherits."""
    if not file.is_file():
        raise ArtifactError(f"{file}: no such file")
    top = read.read_head(file)[0]
    name = new_name or top
    try:
        check_name(name)
    except InvalidName as exc:
        raise InstallError(f"{file}: {exc}") from None
    if name in taken:
        raise UsageError(f"{file}: plugin {name} is given twice")
    taken.add(name)
    check_strategy(runtime_, name, strategy, None)  # fail early, before any work
    staged = stage.Staged(name, journal.staging_path(runtime_, name, tid))
    got = extract(file, staged.path)
    trust.enforce(signature.documents_of_tree(staged.path), str(file), runtime_, staged.warnings)
    stage.check_metadata(got.metadata, got.top, file)
    cfg_path = staged.path / CONFIG_INI
    try:
        raw = layers.read_raw(cfg_path)
        schema.validate(raw, f"{file}: {CONFIG_INI}")
    except ConfigError as exc:
        raise ArtifactError(str(exc)) from None
    if raw["general"]["name"] != got.top:
        raise ArtifactError(f"{file}: {CONFIG_INI} names {raw['general']['name']!r}, not {top!r}")
    if name != got.top:
        stage.rewrite_name(staged.path, got.top, name)
    stage.check_overrides(runtime_, name)
    check_strategy(runtime_, name, strategy, got.metadata)
    record = {
        "installed_from": str(file.absolute()),
        "installed_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "content_hash": repository.content_hash(got.manifest),  # before any --new-name
    }
    _create(staged.path / INSTALL_RECORD, spec.dumps(record))
    stage.check_crontab(runtime_, staged, str(file), others)
    stage.build_venv(runtime_, staged, tid)
    stage.postinstall(runtime_, staged, others)
    return staged


def _create(path: Path, data: bytes) -> None:
    """Write a new file the installer owns: never through a link, never over a file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def check_strategy(
    runtime_: Runtime, name: str, strategy: Strategy, meta: dict[str, Any] | None
) -> None:
    if not registry.entry_exists(runtime_, name) or strategy is Strategy.FORCE:
        return
    if strategy is Strategy.DEFAULT:
        raise InstallError(
            f"plugin {name} is already installed in {runtime_.home}: use --upgrade, --force "
            "or --new-name"
        )
    if meta is None:
        return
    try:
        current = registry.describe(runtime_, name)
    except NotInstalled:
        return  # a broken entry: replacing it is an upgrade
    new = _key(meta["version"], meta["release"])
    if new <= _key(current.version, current.release):
        raise InstallError(
            f"plugin {name} {current.version}-{current.release} is installed, and "
            f"{meta['version']}-{meta['release']} is not newer; use --force to replace it"
        )


def _previous(runtime_: Runtime, name: str) -> str | None:
    if not registry.entry_exists(runtime_, name):
        return None
    try:
        current = registry.describe(runtime_, name)
    except ToolchainError:
        return "?"
    return f"{current.version}-{current.release}"


def abort(rt: Runtime, tid: str) -> None:
    """After a failure before the commit: drop the staging entries and their virtualenvs."""
    _abort(rt, tid)


def _abort(rt: Runtime, tid: str) -> None:
    """After a failure: without a journal nothing was committed, staging is debris."""
    if (rt.plugins / f"{journal.JOURNAL}{tid}.json").exists():
        return  # the commit was decided: the next command completes it
    try:
        for leftover in rt.plugins.glob(f"{journal.STAGING}*-{tid}"):
            journal.drop(leftover)
    except OSError as exc:
        log.warning("%s: staging entries left for the next command: %s", rt.plugins, exc)
    recovery.collect_venvs(rt)


def _steps(
    actions: Sequence[resolve.Action], strategy: Strategy, new_name: str | None
) -> list[Step]:
    steps = []
    for action in actions:
        source = action.candidate.source
        assert source is not None  # the resolver installs only candidates from files
        if action.kind is resolve.ActionKind.UPGRADE:  # too old for a requirer: a newer one
            steps.append(Step(source, Strategy.UPGRADE))
        elif action.reasons:  # a missing dependency
            steps.append(Step(source, Strategy.DEFAULT))
        else:
            steps.append(Step(source, strategy, new_name))
    return steps


def check_arguments(files: Sequence[Path], new_name: str | None = None) -> None:
    """Refuse arguments no install can take (UsageError), before the runtime is touched."""
    if not files:
        raise UsageError("no .plugin file given")
    if new_name is not None and len(files) != 1:
        raise UsageError("--new-name takes exactly one .plugin file")
    for file in files:
        if Path(file).is_dir():
            raise UsageError(
                f"{file}: a directory, not a .plugin file; to install a plugin's source "
                f"directory in development mode, use plugins.install --devlink {file}"
            )


def plan(
    rt: Runtime,
    files: Sequence[Path],
    *,
    new_name: str | None = None,
    repository_dir: Path | None = None,
) -> list[resolve.Action]:
    """What `install` would do with these arguments, dependencies first (a dry run)."""
    check_arguments(files, new_name)
    return repository.plan(rt, files, repository_dir, new_name)


def install(
    rt: Runtime,
    files: Sequence[Path],
    *,
    strategy: Strategy = Strategy.DEFAULT,
    new_name: str | None = None,
    repository_dir: Path | None = None,
) -> list[Change]:
    """Install `.plugin` files and what they require, all or nothing; return what changed."""
    check_arguments(files, new_name)
    try:
        strategy = Strategy(strategy)
    except ValueError:
        choices = ", ".join(s.value for s in Strategy)
        raise UsageError(f"unknown strategy {strategy!r}: use one of {choices}") from None
    actions = repository.plan(rt, files, repository_dir, new_name)
    return transaction(
        rt, _steps(actions, strategy, new_name), force_pins=strategy is Strategy.FORCE
    )


def incoming_pins(steps: Sequence[Step]) -> dict[str, pins.Pinned]:
    """The pins each step brings, by the name it installs under."""
    found = {}
    for step in steps:
        name = repository.file_candidate(Path(step.file), step.new_name).name
        found[name] = pins.of_file(Path(step.file), name)
    return found


def pin_conflicts(
    rt: Runtime, actions: Sequence[resolve.Action], new_name: str | None = None
) -> list[str]:
    """What `install` would refuse for disagreeing pins (a dry run shows it)."""
    return pins.conflicts(rt, incoming_pins(_steps(actions, Strategy.DEFAULT, new_name)))


def transaction(rt: Runtime, steps: Sequence[Step], *, force_pins: bool = False) -> list[Change]:
    """Stage every step, then commit them together; the caller holds the runtime lock.

    Refused first when a plugin would pin a package at another version than a plugin it
    inherits (`force_pins`: a warning instead).
    """
    incoming = incoming_pins(steps)
    pins.check(rt, incoming, force=force_pins, what=f"installing {', '.join(incoming)}")
    tid = journal.new_id()
    staged: list[stage.Staged] = []
    taken: set[str] = set()
    changes: list[Change] = []
    try:
        for step in steps:
            others = {s.name: s.path for s in staged}  # dependencies come first
            item = _stage(rt, Path(step.file), tid, step.strategy, step.new_name, taken, others)
            staged.append(item)
            meta = registry.read_json(item.path / METADATA)
            changes.append(
                Change(item.name, meta["version"], meta["release"], _previous(rt, item.name))
            )
        moves = [
            journal.Move(
                s.name, s.path, journal.backup_path(rt, s.name, tid), archive.slot(rt, s.name, tid)
            )
            for s in staged
        ]

        warned, failed = {s.name: s.warnings for s in staged}, []
        after = lambda: failed.extend(gate.after_commit(rt, moves, warned))  # noqa: E731
        journal.commit(rt, tid, moves, after=after)
    except BaseException:
        _abort(rt, tid)
        raise
    recovery.collect_venvs(rt)
    for item in staged:
        archive.prune(rt, item.name)
    gate.raise_if(failed)
    return changes


def source_config(source_dir: Path) -> layers.PluginConfig:
    """The validated `config.ini` of a plugin source directory, before the runtime is touched."""
    return layers.load(source_dir.absolute() / CONFIG_INI)


def devlink(rt: Runtime, cfg: layers.PluginConfig, *, force: bool = False) -> str:
    """Install the source directory of `cfg` in development mode: the entry links to it."""
    source = cfg.path.parent
    name = cfg.name
    target = rt.plugin(name)
    if target.is_symlink() and Path(os.readlink(target)) == source:
        hooks.finalize(rt, name)
        return name
    if registry.entry_exists(rt, name) and not force:
        raise InstallError(
            f"plugin {name} is already installed in {rt.home}: use --force to replace it "
            f"with a link to {source}"
        )
    stage.check_overrides(rt, name)
    tid = journal.new_id()
    link = journal.staging_path(rt, name, tid)
    try:
        link.symlink_to(source, target_is_directory=True)
        move = journal.Move(name, link, journal.backup_path(rt, name, tid))
        journal.commit(rt, tid, [move], after=lambda: hooks.finalize(rt, name))
    except BaseException:
        _abort(rt, tid)
        raise
    recovery.collect_venvs(rt)
    if not (source / VENV / "bin").is_dir():
        log.warning(
            "%s has no virtualenv (%s/) yet: run make in it; until then its commands "
            "cannot run (plugin_wrapper %s refuses)",
            source,
            VENV,
            name,
        )
    return name


def uninstall(rt: Runtime, name: str, *, clean: bool = False, force: bool = False) -> bool:
    """Remove plugin `name` (only the link of a devlinked one); True if it was devlinked."""
    if not registry.entry_exists(rt, name):
        raise NotInstalled(f"plugin {name!r} is not installed in {rt.home}")
    needed_by = [] if force else repository.requirers(rt, name)
    if needed_by:
        raise InstallError(
            f"plugin {name} is required by {', '.join(needed_by)}; uninstall "
            f"{'them' if len(needed_by) > 1 else 'it'} first, or use --force"
        )
    linked = registry.entry_kind(rt, name) is registry.EntryKind.DEVLINK
    tid = journal.new_id()
    journal.commit(
        rt,
        tid,
        [journal.Move(name, None, journal.backup_path(rt, name, tid))],
        before=lambda: hooks.before_uninstall(rt, name),  # daemons stop before files go
        after=lambda: plugin_env.drop_cache(rt, name),
    )
    recovery.collect_venvs(rt)
    # What uninstall keeps: the log (the operator's record) and, unless --clean, the
    # override file. The archived versions and the plugin's tmp go with it: an uninstalled
    # plugin is not rolled back, it is installed again.
    for path in [rt.archive / name, rt.tmp / name] + ([rt.logs / name] if clean else []):
        try:
            journal.drop(path)
        except OSError as exc:  # the plugin is gone; only space is lost
            log.warning("%s: cannot remove it: %s", path, exc)
    if clean:
        rt.override(name).unlink(missing_ok=True)
    return linked
