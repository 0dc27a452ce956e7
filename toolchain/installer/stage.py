"""A plugin tree in staging made ready to swap in: checked, renamed, its venv built, set up.

Every function here works on a staged directory beside its target; nothing here touches
an installed plugin (`journal.commit` does that).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.artifact import spec, targets
from toolchain.artifact.manifest import dumps_manifest
from toolchain.artifact.spec import FORMAT_VERSION
from toolchain.config import layers, schema
from toolchain.core.errors import ArtifactError, CommandError, CronError, InstallError
from toolchain.core.layout import (
    CONFIG_INI,
    CRONTAB,
    MANIFEST,
    METADATA,
    NPM_CACHE,
    POSTINSTALL,
    SIGNED_COPY,
    STATEMENT,
    VENV,
    WHEELHOUSE,
    Runtime,
    provisioning_dir,
)
from toolchain.core.runner import clean_env, run
from toolchain.localenv import node, venv
from toolchain.runtime import plugin_env, registry

_REQUIRED_METADATA = ("name", "version", "release", "python_tag", "platform")
_NAME_LINE = re.compile(r"^(\s*name\s*[=:]\s*)(.*?)\s*$")


@dataclass
class Staged:
    """A plugin tree in staging, and the virtualenv built for it."""

    name: str
    path: Path
    venv: Path | None = None
    warnings: list[str] = field(default_factory=list)  # logged once it is installed


def check_metadata(meta: dict[str, Any], top: str, where: Path) -> None:
    """Refuse metadata that is incomplete, inconsistent or for another machine."""
    from packaging.version import InvalidVersion, Version

    missing = [k for k in _REQUIRED_METADATA if not isinstance(meta.get(k), str)]
    if missing:
        raise ArtifactError(f"{where}: metadata lacks {', '.join(missing)}; rebuild the artifact")
    if meta["name"] != top:
        raise ArtifactError(f"{where}: metadata names {meta['name']!r}, the archive holds {top!r}")
    try:
        if len(meta["version"]) > 128:
            raise InvalidVersion
        Version(meta["version"])
    except (InvalidVersion, ValueError):  # ValueError: a number Python will not convert
        shown = meta["version"][:40] + ("..." if len(meta["version"]) > 40 else "")
        raise ArtifactError(f"{where}: version {shown!r} is not PEP 440") from None
    if not meta["release"].isdigit() or int(meta["release"]) < 1:
        raise ArtifactError(f"{where}: release {meta['release']!r} is not a positive integer")
    fmt = meta.get("format_version", FORMAT_VERSION)
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise ArtifactError(
            f"{where}: format version {fmt!r} is newer than this toolchain's "
            f"({FORMAT_VERSION}); upgrade the toolchain"
        )
    built_for = targets.of_metadata(meta)
    if not any(targets.fits_host(t) for t in built_for):
        raise ArtifactError(
            f"{where}: built for {', '.join(built_for)}; this host is {spec.python_tag()}-"
            f"{spec.platform_tag()}: release it for this target (PLUGIN_TARGETS) and its Python"
        )


def check_overrides(runtime_: Runtime, name: str) -> None:
    """Validate the runtime and provisioning override files of `name`, when present."""
    provisioning = provisioning_dir()
    paths = [runtime_.override(name)]
    if provisioning is not None:
        paths.append(provisioning / f"{name}.ini")
    for path in paths:
        if path.is_file():
            schema.validate(layers.read_raw(path), path, override=True)


def rewrite_name(staged: Path, old: str, new: str) -> None:
    """Make an installed copy of `old` call itself `new`: config.ini, metadata, manifest."""
    cfg = staged / CONFIG_INI
    lines = cfg.read_text(encoding="utf-8").splitlines(keepends=True)
    section = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        elif section == "general" and (m := _NAME_LINE.match(line)):
            lines[i] = f"{m[1]}{new}\n"
    cfg.write_text("".join(lines), encoding="utf-8")
    if (staged / STATEMENT).is_file():  # what the signature covers, kept as it was
        (staged / SIGNED_COPY).mkdir()
        for rel in (METADATA, MANIFEST):
            shutil.copyfile(staged / rel, staged / SIGNED_COPY / Path(rel).name)
    meta_path = staged / METADATA
    meta = registry.read_json(meta_path)
    meta_path.write_bytes(spec.dumps(dict(meta, name=new, original_name=old)))
    man_path = staged / MANIFEST
    manifest = registry.read_json(man_path)
    for item in manifest["files"]:
        if item["path"] in (CONFIG_INI, METADATA):
            path = staged / item["path"]
            item["size"] = path.stat().st_size
            item["sha256"] = spec.sha256_file(path)
    man_path.write_bytes(dumps_manifest(manifest))


def write_requirements(
    wheelhouse: Path, out: Path, only: set[str] | None = None, known: dict[str, str] | None = None
) -> bool:
    """Pin every wheel of `wheelhouse` (of those named in `only`, when given) with its hash
    into `out`, one line per version with the hashes of its wheels; False when none.
    `known`: sha256 by wheel file name, of a tree extraction checked against its manifest
    (not read again)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    found: dict[tuple[str, str], list[str]] = {}
    for wheel in sorted(wheelhouse.glob("*.whl")) if wheelhouse.is_dir() else []:
        try:
            name, version, _build, _tags = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            raise ArtifactError(f"{wheel}: not a wheel file name; rebuild the artifact") from None
        if wheel.is_symlink() or not wheel.is_file():
            raise ArtifactError(f"{wheel}: not a wheel file (a link or a directory)")
        if only is None or wheel.name in only:
            key = (str(name), str(version))
            digest = (known or {}).get(wheel.name) or spec.sha256_file(wheel)
            found.setdefault(key, []).append(f"--hash=sha256:{digest}")
    lines = [f"{n}=={v} {' '.join(hashes)}\n" for (n, v), hashes in found.items()]
    out.write_text("".join(lines), encoding="utf-8")
    return bool(lines)


def host_wheels(meta: dict[str, Any]) -> set[str] | None:
    """The wheels a release built for several targets lists for the first one this host
    fits (None: a release for one target, whose wheels are all for it)."""
    listed = meta.get("target_wheels")
    if not isinstance(listed, dict):
        return None
    for target in targets.of_metadata(meta):
        names = listed.get(target)
        if targets.fits_host(target) and isinstance(names, list):
            return {str(n) for n in names}
    return None


def build_venv(runtime_: Runtime, staged: Staged, tid: str) -> None:
    """Build the staged plugin's virtualenv offline at its final place; link `local` to it."""
    local = staged.path / VENV
    if local.exists() or local.is_symlink():
        raise ArtifactError(f"{staged.name}: the artifact holds {VENV}/, which is never released")
    staged.venv = runtime_.venvs / f"{staged.name}.{tid}"
    house = staged.path / WHEELHOUSE
    reqs = runtime_.tmp / f".requirements-{staged.name}-{tid}.txt"
    try:
        meta = spec.load_json((staged.path / METADATA).read_bytes(), staged.path, METADATA)
        manifest = registry.read_json(staged.path / MANIFEST)  # checked at extraction
        known = {
            str(f["path"]).rpartition("/")[2]: str(f["sha256"])
            for f in manifest.get("files", [])
            if str(f.get("path", "")).startswith(f"{WHEELHOUSE}/")
        }
        wanted = write_requirements(house, reqs, host_wheels(meta), known)
        venv.build(
            staged.venv,
            reqs if wanted else None,
            find_links=[house],
            offline=True,
            store=runtime_.store,
        )
    finally:
        reqs.unlink(missing_ok=True)
    local.symlink_to(staged.venv, target_is_directory=True)
    if node.wanted(staged.path):
        cache = staged.path / NPM_CACHE
        node.install_offline(staged.path, staged.venv, cache, runtime_.tmp / f".npm-{tid}")


def postinstall(
    runtime_: Runtime, staged: Staged, others: Mapping[str, Path] | None = None
) -> None:
    """Run the staged plugin's `postinstall` in its plugin env; its failure fails the install."""
    script = staged.path / POSTINSTALL
    if not script.is_file():
        return
    if not os.access(script, os.X_OK):
        raise InstallError(f"plugin {staged.name}: {POSTINSTALL} is not executable")
    env = plugin_env.variables(runtime_, staged.name, staged.path, staged=others)
    try:
        run([script], cwd=staged.path, env=env, what=f"{staged.name}: {POSTINSTALL}")
    except CommandError as exc:
        raise InstallError(f"plugin {staged.name}: {exc}") from None


def check_crontab(
    runtime_: Runtime, staged: Staged, where: str, others: Mapping[str, Path] | None = None
) -> None:
    """Refuse a crontab that cannot become cron jobs, before anything is swapped in
    (after the swap, a broken crontab would only be a warning and keep the old jobs)."""
    path = staged.path / CRONTAB
    if not path.is_file():
        return
    from toolchain.core.settings import RUNTIME_HOME
    from toolchain.running import crontab

    base = clean_env({RUNTIME_HOME: str(runtime_.home)})
    env = plugin_env.variables(runtime_, staged.name, staged.path, base=base, staged=others)
    try:
        crontab.parse(crontab.read(path, f"{where}: {CRONTAB}"), env, f"{where}: {CRONTAB}")
    except CronError as exc:
        raise ArtifactError(str(exc)) from None


def prepare(rt: Runtime, name: str, staged: Path, tid: str) -> None:
    """Build the virtualenv of a staged tree and run its postinstall (rollback's way in)."""
    item = Staged(name, staged)
    check_crontab(rt, item, f"plugin {name}")
    build_venv(rt, item, tid)
    postinstall(rt, item)
