"""`make release`: the self-contained `.plugin` file of a plugin directory."""

from __future__ import annotations

import datetime as dt
import os
import socket
import tempfile
from pathlib import Path

from toolchain.artifact import pack, spec
from toolchain.artifact.spec import FORMAT_VERSION
from toolchain.build import cross, releaseignore, sbom, signing
from toolchain.build.wheelhouse import build_wheelhouse, built_from_sdists
from toolchain.config import layers, schema
from toolchain.core import settings
from toolchain.core.errors import ReleaseError
from toolchain.core.layout import NPM_CACHE, SBOM, WHEELHOUSE, PluginDir
from toolchain.localenv import node


def metadata(cfg: layers.PluginConfig, epoch: int) -> dict[str, object]:
    """The metadata document of a release."""
    general = cfg.general
    requires = [f"{n}{s}" for n, s in schema.parse_requires(general.get("_requires", ""))]
    return {
        "name": cfg.name,
        "version": cfg.version,
        "release": cfg.release,
        "summary": general.get("_summary", ""),
        "license": general.get("_license", ""),
        "url": general.get("_url", ""),
        "maintainer": general.get("_maintainer", ""),
        "vendor": general.get("_vendor", ""),
        "requires": requires,
        "build_host": socket.gethostname(),
        "build_date": dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python_tag": spec.python_tag(),
        "platform": spec.platform_tag(),
        "format_version": FORMAT_VERSION,
    }


def _tree(source: Path, prefix: str) -> list[tuple[str, str]]:
    """`(path in the archive, source path)` of a directory and everything below it."""
    members = [(prefix, os.fspath(source))]
    for path in source.rglob("*"):
        members.append((f"{prefix}/{path.relative_to(source).as_posix()}", os.fspath(path)))
    return members


def plugin_pins(plugin: PluginDir, repository: Path | None) -> dict[str, object]:
    """What the metadata records of the pins: the plugin's own (`pins`), and those of each
    plugin it requires, where they came from (`inherited_pins`; `source` is None for one
    that was found nowhere, and whose pins the freeze went without)."""
    from toolchain.build import constraints, freeze
    from toolchain.core.layout import Runtime

    frozen = plugin.req_out.is_file()
    own = {p.name: p.version for p in freeze.read_pins(plugin.req_out)} if frozen else {}
    repository = constraints.repository_dir(repository)
    found, missing = constraints.required_plugins(plugin, Runtime.current(), repository)
    inherited: dict[str, object] = {
        name: {"version": req.version, "source": req.source, "pins": req.pins}
        for name, req in found.items()
    }
    inherited |= {name: {"version": None, "source": None, "pins": {}} for name in missing}
    return {"pins": own, "inherited_pins": dict(sorted(inherited.items()))}


def release(plugin: PluginDir, output: Path | None = None, repository: Path | None = None) -> Path:
    """Build `NAME-VERSION-RELEASE.PLATFORM.plugin` in the plugin dir (or at `output`)."""
    cfg = layers.load(plugin.config)
    sign = signing.signer()  # a key that cannot sign fails before the build
    house = build_wheelhouse(plugin)
    targets = cross.chosen(plugin, cfg.general)
    wheels, per_target = sorted(house.glob("*.whl")), {}
    if targets is not None:  # a wheelhouse for each target, pure wheels once
        per_target = cross.wheels(plugin, house, targets)
        wheels = sorted({w.name: w for ws in per_target.values() for w in ws}.values())
    epoch = settings.source_date_epoch(ReleaseError)
    platform = cross.platform_of(targets)
    out = output or plugin.root / spec.artifact_name(cfg.name, cfg.version, cfg.release, platform)
    root = os.fspath(plugin.root)
    members = [(rel, os.path.join(root, rel)) for rel in releaseignore.select(plugin.root)]
    members += [(f"{WHEELHOUSE}/{p.name}", os.fspath(p)) for p in wheels]
    members.append((WHEELHOUSE, os.fspath(house)))
    if node.wanted(plugin.root):
        members += _tree(node.pack_cache(plugin.root, house / "npm-cache", epoch), NPM_CACHE)
    meta = metadata(cfg, epoch)
    if targets is not None:  # the first target is the release's python tag and platform
        meta |= {"python_tag": targets[0].python, "platform": targets[0].platform}
        meta["targets"] = [str(t) for t in targets]
        meta["target_wheels"] = {t: [w.name for w in ws] for t, ws in per_target.items()}
    meta["wheels_built_from_sdists"] = built_from_sdists(house)
    meta |= plugin_pins(plugin, repository)
    bom = sbom.document(meta, wheels, plugin.root / node.LOCK)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        bom_file = os.path.join(scratch, "sbom.cdx.json")
        Path(bom_file).write_bytes(bom)
        pack.pack(out, cfg.name, [*members, (SBOM, bom_file)], meta, mtime=epoch, sign=sign)
    os.utime(out)  # newer than the directory entry its rename just changed: make sees it fresh
    return out
