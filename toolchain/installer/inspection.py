"""Looking at plugins: metadata and files (`info`), integrity (`check`), `repackage`."""

from __future__ import annotations

import configparser
import datetime as dt
import io
import os
import socket
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.artifact import read, signature, spec
from toolchain.config import layers, schema
from toolchain.core import settings
from toolchain.core.errors import InstallError
from toolchain.core.layout import (
    CONFIG_INI,
    INSTALL_RECORD,
    MANIFEST,
    METADATA,
    SBOM,
    SIGNATURE,
    SIGNED_COPY,
    STATEMENT,
    VENV,
    Runtime,
)
from toolchain.installer import repository, trust
from toolchain.runtime import plugin_env, registry

# Written by the installer beside the artifact's own files; not part of the manifest.
# The signed statement and its signature come with the artifact but outside its manifest.
_INSTALLER_FILES = {MANIFEST, INSTALL_RECORD, VENV, STATEMENT, SIGNATURE, SIGNED_COPY}
_INSTALLER_FILES |= {f"{SIGNED_COPY}/{Path(rel).name}" for rel in (METADATA, MANIFEST)}


def file_info(path: Path, rt: Runtime) -> dict[str, Any]:
    """Metadata, signature and file list of a `.plugin` file, every file checked against
    its manifest (the signature against `rt`'s trust)."""
    top, docs = read.read_documents(path)  # the head once: its documents, signed or not
    meta = spec.load_json(docs[METADATA], path, METADATA)
    manifest = spec.load_json(docs[MANIFEST], path, MANIFEST)
    verified = read.verify(path, manifest)
    signed = trust.describe(docs, str(path), rt)
    doc = {"name": top, "file": str(path), "metadata": meta, "signature": signed}
    doc["content_hash"] = repository.content_hash(manifest)  # what provisioning compares
    return {**doc, "files": _listing(manifest), "verified": f"{verified} files match the manifest"}


def sbom(target: str, is_file: bool) -> str:
    """The CycloneDX bill of materials of a `.plugin` file or an installed plugin."""
    if is_file:
        data = read.read_member(Path(target), SBOM, limit=64 << 20)
    else:
        entry = registry.describe(Runtime.current(), target)
        path = entry.home / SBOM
        data = path.read_bytes() if path.is_file() and entry.dev_link is None else None
    if data is None:
        raise InstallError(f"{target}: no bill of materials ({SBOM}); release it again")
    return data.decode("utf-8", "replace")


def _listing(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"path": d, "type": "dir"} for d in manifest.get("dirs", [])]
    rows += [dict(f, type="file") for f in manifest.get("files", [])]
    rows += [dict(s, type="symlink") for s in manifest.get("symlinks", [])]
    return sorted(rows, key=lambda r: str(r["path"]))


def installed_info(rt: Runtime, name: str) -> dict[str, Any]:
    """Metadata, install record and file list of an installed plugin."""
    entry = registry.describe(rt, name)
    doc: dict[str, Any] = {"name": name, "home": str(entry.home)}
    if entry.dev_link is not None:
        general = layers.load(entry.home / CONFIG_INI).general
        doc["dev_link"] = str(entry.dev_link)
        doc["metadata"] = {"name": name, "version": entry.version, "release": entry.release}
        doc["metadata"].update({k.lstrip("_"): v for k, v in general.items() if k != "name"})
        doc["files"] = []
        return doc
    doc["metadata"] = registry.read_json(entry.home / METADATA)
    docs = signature.documents_of_tree(entry.home)
    doc["signature"] = trust.describe(docs, f"plugin {name}", rt)
    record = entry.home / INSTALL_RECORD
    if record.is_file():
        doc["installed"] = registry.read_json(record)
    manifest = registry.read_json(entry.home / MANIFEST)
    doc["content_hash"] = repository.content_hash(manifest)
    doc["files"] = _listing(manifest)
    return doc


@dataclass
class CheckReport:
    """Differences between an installed plugin and its manifest."""

    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing or self.extra)


def _walk(root: Path) -> list[str]:
    found = []
    for current, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for entry in [*dirs, *files]:
            rel = entry if rel_dir == "." else f"{rel_dir}/{entry}"
            if rel not in _INSTALLER_FILES:
                found.append(rel)
    return found


def _manifested(rt: Runtime, name: str) -> tuple[Path, dict[str, Any]]:
    entry = registry.describe(rt, name)
    if entry.dev_link is not None:
        raise InstallError(
            f"plugin {name} is devlinked to {entry.dev_link}: it has no manifest; "
            "use make release there"
        )
    return entry.home, registry.read_json(entry.home / MANIFEST)


def check(rt: Runtime, name: str) -> CheckReport:
    """Compare the installed files of `name` with the hashes of its artifact."""
    home, manifest = _manifested(rt, name)
    return check_tree(home, manifest)


def check_tree(home: Path, manifest: dict[str, Any]) -> CheckReport:
    """Compare the files of the plugin tree `home` with the hashes of `manifest`."""
    report = CheckReport()
    known: set[str] = set()
    for item in manifest["files"]:
        rel = item["path"]
        known.add(rel)
        path = home / rel
        try:
            st = path.lstat()
        except FileNotFoundError:
            report.missing.append(rel)
            continue
        executable = bool(int(item["mode"], 8) & 0o111)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_size != item["size"]
            or bool(st.st_mode & 0o111) != executable
            or spec.sha256_file(path) != item["sha256"]
        ):
            report.modified.append(rel)
    for item in manifest["symlinks"]:
        rel = item["path"]
        known.add(rel)
        path = home / rel
        if not path.is_symlink():
            (report.modified if path.exists() else report.missing).append(rel)
        elif os.readlink(path) != item["target"]:
            report.modified.append(rel)
    for rel in manifest["dirs"]:
        known.add(rel)
        path = home / rel
        if path.is_symlink() or not path.is_dir():
            (report.modified if path.exists() else report.missing).append(rel)
    report.extra = sorted(set(_walk(home)) - known)
    report.modified.sort()
    report.missing.sort()
    return report


def _bake(stack: list[schema.Raw]) -> schema.Raw:
    """Fold override layers into one config that gives the same values for every variant.

    An override of `key` (or `key[V]`) wins over the lower layers' forms of `key` that
    it would win over when merged: every form for a plain key, `key[V]` and the more
    specific `key[V_...]` for a variant.
    """
    baked: schema.Raw = {s: dict(k) for s, k in stack[0].items()}
    for layer in stack[1:]:
        for section, keys in layer.items():
            target = baked.setdefault(section, {})
            for written, value in keys.items():
                key, variant = schema.split_variant(written)
                for lower in list(target):
                    lower_key, lower_variant = schema.split_variant(lower)
                    if lower_key != key:
                        continue
                    if variant is None or (
                        lower_variant is not None
                        and (lower_variant == variant or lower_variant.startswith(variant + "_"))
                    ):
                        del target[lower]
                target[written] = value
    return baked


def effective_config(rt: Runtime, name: str) -> str:
    """The `config.ini` text of `name` with its override layers folded in."""
    home = rt.plugin(name)
    found = [
        layers.read_raw(path)
        for index, path in enumerate(plugin_env.config_files(rt, name, home))
        if index == 0 or path.is_file()
    ]
    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_dict(_bake(found))
    out = io.StringIO()
    out.write(f"# Effective configuration of plugin {name}, overrides included.\n")
    parser.write(out)
    return out.getvalue()


def repackage(rt: Runtime, name: str, output_dir: Path) -> Path:
    """Build a `.plugin` of installed `name`: its name and effective configuration."""
    home, manifest = _manifested(rt, name)
    meta = registry.read_json(home / METADATA)
    rels = [
        p
        for p in [
            *manifest["dirs"],
            *(f["path"] for f in manifest["files"]),
            *(s["path"] for s in manifest["symlinks"]),
        ]
        if p not in (CONFIG_INI, METADATA)
    ]
    missing = [rel for rel in rels if not (home / rel).exists() and not (home / rel).is_symlink()]
    if missing:
        raise InstallError(
            f"plugin {name}: {missing[0]} is missing; see plugins.check {name}, reinstall"
        )
    epoch = settings.source_date_epoch(InstallError)
    meta = {k: v for k, v in meta.items() if k not in ("size", "original_name")}
    meta.update(
        name=name,
        build_host=socket.gethostname(),
        build_date=dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    out = output_dir / spec.artifact_name(
        name, str(meta["version"]), str(meta["release"]), str(meta["platform"])
    )
    from toolchain.artifact.pack import pack  # the writer: only this command needs it

    with tempfile.TemporaryDirectory(prefix="repackage-") as tmp:
        generated = Path(tmp) / CONFIG_INI
        generated.write_text(effective_config(rt, name), encoding="utf-8")
        members = [(rel, os.path.join(home, rel)) for rel in rels]
        members.append((CONFIG_INI, os.fspath(generated)))
        pack(out, name, members, meta, mtime=epoch)
    return out
