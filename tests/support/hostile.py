"""Hostile variants of a real `.plugin` file, for the installer's corpus tests.

`variants(release)` reads a release made by `make release` and yields one mutated copy
per attack: each attack is applied to members of *that* release (its config, scripts,
wheels, directories, metadata), then the manifest and the metadata's size are computed
again from what the archive now holds, so that only the attack differs from an honest
artifact (an attack on the manifest itself says so in its name and is written as is).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from toolchain.artifact.manifest import Entry, MemberKind, dumps_manifest, manifest_of
from toolchain.artifact.spec import dumps
from toolchain.core.layout import CONFIG_INI, MANIFEST, METADATA

Members = list[tuple[tarfile.TarInfo, bytes | None]]
Attack = Callable[[Members], Members]


@dataclass(frozen=True)
class Release:
    """The members of a real release, in order, with its top directory."""

    top: str
    members: Members

    @classmethod
    def read(cls, path: Path) -> Release:
        members: Members = []
        with tarfile.open(path, "r:gz") as tar:
            for info in tar.getmembers():
                handle = tar.extractfile(info) if info.isfile() else None
                members.append((info, handle.read() if handle else None))
        return cls(members[0][0].name.split("/")[0], members)

    def rel(self, info: tarfile.TarInfo) -> str:
        return info.name[len(self.top) + 1 :] if info.name.startswith(self.top + "/") else ""

    def find(self, rel: str) -> tuple[tarfile.TarInfo, bytes | None]:
        return next((i, d) for i, d in self.members if self.rel(i) == rel)


def _recompute(release: Release, members: Members) -> Members:
    """The members with metadata.json's size and manifest.json computed again."""
    entries = []
    for info, data in members:
        rel = info.name[len(release.top) + 1 :] if info.name.startswith(release.top + "/") else ""
        if not rel or rel in (MANIFEST, METADATA):
            continue
        if info.isfile() and data is not None:
            sha = hashlib.sha256(data).hexdigest()
            entries.append(Entry(rel, MemberKind.FILE, info.mode & 0o7777, len(data), sha))
        elif info.issym():
            entries.append(Entry(rel, MemberKind.SYMLINK, target=info.linkname))
        elif info.isdir():
            entries.append(Entry(rel, MemberKind.DIR, info.mode & 0o7777))
    out: Members = []
    meta_name = f"{release.top}/{METADATA}"
    meta = next((d for i, d in members if i.name == meta_name), None)
    meta_bytes = b""
    if meta is not None:
        doc = json.loads(meta)
        if isinstance(doc, dict):
            doc["size"] = sum(e.size for e in entries)
            meta_bytes = dumps(doc)
        else:
            meta_bytes = meta
        sha = hashlib.sha256(meta_bytes).hexdigest()
        entries.append(Entry(METADATA, MemberKind.FILE, 0o644, len(meta_bytes), sha))
    manifest = dumps_manifest(manifest_of(entries))
    for info, data in members:
        if info.name == meta_name:
            data = meta_bytes
        elif info.name == f"{release.top}/{MANIFEST}":
            data = manifest
        out.append((info, data))
    return out


def write(path: Path, members: Members) -> Path:
    """`members` as a gzip tar (PAX), sizes taken from the data."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info = copy.copy(info)
            if data is not None and info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.size = 0
                tar.addfile(info)
    return path


def _retyped(info: tarfile.TarInfo, **attrs: object) -> tarfile.TarInfo:
    new = copy.copy(info)
    new.pax_headers = dict(info.pax_headers)
    for key, value in attrs.items():
        setattr(new, key, value)
    return new


def _replace(rel: str, fn: Callable[[tarfile.TarInfo, bytes | None], Members]) -> Attack:
    def attack(members: Members) -> Members:
        out: Members = []
        for info, data in members:
            out += fn(info, data) if info.name.endswith("/" + rel) else [(info, data)]
        return out

    return attack


def _append(*extra: tuple[tarfile.TarInfo, bytes | None]) -> Attack:
    return lambda members: [*members, *extra]


def _new(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = b"x", **attrs: object):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data if kind == tarfile.REGTYPE else None


def _file_attacks(release: Release, rel: str) -> dict[str, Attack]:
    """Every way to turn the regular member `rel` into something harmful."""
    top = release.top
    up = "../" * (rel.count("/") + 2)
    sym, hard = tarfile.SYMTYPE, tarfile.LNKTYPE

    def as_(kind: bytes, **attrs: object) -> Attack:
        return _replace(rel, lambda i, d: [(_retyped(i, type=kind, size=0, **attrs), None)])

    return {
        "a link out of the plugin": as_(sym, linkname=f"{up}outside"),
        "an absolute link": as_(sym, linkname="/etc/passwd"),
        "a hard link to a system file": as_(hard, linkname="/etc/passwd"),
        "a hard link to another member": as_(hard, linkname=f"{top}/{CONFIG_INI}"),
        "a character device": as_(tarfile.CHRTYPE, devmajor=1, devminor=3),
        "a block device": as_(tarfile.BLKTYPE, devmajor=8, devminor=0),
        "a fifo": as_(tarfile.FIFOTYPE),
        "setuid": _replace(rel, lambda i, d: [(_retyped(i, mode=0o4755), d)]),
        "setgid": _replace(rel, lambda i, d: [(_retyped(i, mode=0o2755), d)]),
        "twice, other bytes the second time": _replace(
            rel, lambda i, d: [(i, d), (copy.copy(i), (d or b"") + b"\n# second")]
        ),
        "renamed through ..": _replace(
            rel, lambda i, d: [(_retyped(i, name=f"{top}/{up}{posixpath.basename(rel)}"), d)]
        ),
        "renamed absolute": _replace(
            rel, lambda i, d: [(_retyped(i, name=f"/tmp/{posixpath.basename(rel)}"), d)]
        ),
        "its pax path pointing out": _replace(
            rel, lambda i, d: [(_retyped(i, pax_headers={"path": f"{top}/{up}pax-escape"}), d)]
        ),
        "its pax linkpath on a link out": as_(
            sym, linkname="ok", pax_headers={"linkpath": f"{up}pax-link-escape"}
        ),
        "a 64 MiB pax header": _replace(
            rel, lambda i, d: [(_retyped(i, pax_headers={"comment": "x" * (64 << 20)}), d)]
        ),
        "a directory": as_(tarfile.DIRTYPE, mode=0o755),
    }


def _dir_attacks(release: Release, rel: str) -> dict[str, Attack]:
    """Ways to redirect what is written under the directory member `rel`."""
    up = "../" * (rel.count("/") + 2)

    def as_link(target: str) -> Attack:
        return _replace(
            rel, lambda i, d: [(_retyped(i, type=tarfile.SYMTYPE, linkname=target), None)]
        )

    return {
        "a link out, its files written through it": as_link(f"{up}outside-dir"),
        "a link to /tmp, its files written through it": as_link("/tmp"),
        "a link to its parent": as_link(".."),
    }


def _text_attack(rel: str, edit: Callable[[str], str]) -> Attack:
    return _replace(rel, lambda i, d: [(i, edit((d or b"").decode()).encode())])


def _metadata(edit: Callable[[dict], None]) -> Attack:
    def change(text: str) -> str:
        doc = json.loads(text)
        edit(doc)
        return json.dumps(doc)

    return _text_attack(METADATA, change)


def _whole_file_attacks(release: Release) -> dict[str, Attack]:
    """Attacks on the plugin as a whole: names the installer owns, metadata, config."""
    top = release.top
    sym = tarfile.SYMTYPE
    general = "[general]\n"
    return {
        "installer's record as a link to config.ini": _append(
            _new(f"{top}/.release/install.json", sym, linkname="../config.ini")
        ),
        "installer's record as a file": _append(_new(f"{top}/.release/install.json")),
        "installer's record as a directory": _append(
            _new(f"{top}/.release/install.json", tarfile.DIRTYPE)
        ),
        "installer's local as a link": _append(_new(f"{top}/local", sym, linkname="bin")),
        "a file under the installer's local": _append(_new(f"{top}/local/bin/python")),
        "a link out through the installer's local": _append(
            _new(f"{top}/v", sym, linkname="local/..")
        ),
        "a member outside the top directory": _append(_new("elsewhere/file")),
        "a path 1,800 directories deep": _append(_new(f"{top}/" + "d/" * 1800 + "f")),
        "metadata name starting with -": _metadata(lambda d: d.update(name="-h")),
        "metadata name with ..": _metadata(lambda d: d.update(name="../evil")),
        "metadata version of a million digits": _metadata(
            lambda d: d.update(version="1" * 1_000_000)
        ),
        "metadata not an object": _text_attack(METADATA, lambda t: "[1, 2]"),
        "config name differing from metadata": _text_attack(
            CONFIG_INI, lambda t: t.replace(f"name = {top}", "name = other", 1)
        ),
        "config value with a NUL byte": _text_attack(
            CONFIG_INI, lambda t: t + "\n[custom_nul]\nkey = a\0b\n"
        ),
        "config value escaping Jinja's sandbox": _text_attack(
            CONFIG_INI,
            lambda t: (
                t + "\n[custom_jinja]\nkey = {{ lipsum.__globals__['os'].system('touch "
                "/tmp/hostile-corpus-pwned') }}\n"
            ),
        ),
        "config value over 128 KiB": _text_attack(
            CONFIG_INI, lambda t: t + "\n[custom_big]\nkey = " + "v" * (129 << 10) + "\n"
        ),
        "daemon section name with a space": _text_attack(
            CONFIG_INI, lambda t: t + "\n[extra_daemon_a b]\n_cmd_and_args = sleep 1\n"
        ),
        "config without [general]": _text_attack(
            CONFIG_INI, lambda t: t.replace(general, "[generic]\n", 1)
        ),
        "crontab line break smuggling a line": _text_attack(
            "crontab",
            lambda t: t + "* * * * * true\r* * * * * touch /tmp/hostile-corpus-pwned\n",
        ),
        "crontab SHELL= assignment": _text_attack("crontab", lambda t: t + "SHELL=/bin/evil\n"),
    }


def variants(release_path: Path) -> Iterator[tuple[str, Attack, bool]]:
    """(name, attack, recompute) for every hostile variant of a real release.

    File attacks go to one member of each kind the release has: config.ini, a script in
    bin/, a wheel of the wheelhouse, and (a head attack) metadata.json and manifest.json;
    directory attacks to bin/ and the wheelhouse directory.
    """
    release = Release.read(release_path)
    rels = [release.rel(i) for i, _ in release.members]
    script = next(r for r in rels if r.startswith("bin/") and release.find(r)[0].isfile())
    wheel = next(r for r in rels if r.endswith(".whl"))
    for rel in (CONFIG_INI, script, wheel, METADATA, MANIFEST):
        for name, attack in _file_attacks(release, rel).items():
            if rel == script and name == "a directory":
                continue  # an empty directory bin/NAME is a harmless plugin, not an attack
            yield f"{rel} as {name}", attack, rel != MANIFEST
    for rel in ("bin", posixpath.dirname(wheel)):
        for name, attack in _dir_attacks(release, rel).items():
            yield f"{rel}/ as {name}", attack, True
    for name, attack in _whole_file_attacks(release).items():
        yield name, attack, True
    yield "manifest that is not JSON", _text_attack(MANIFEST, lambda t: t[:-5]), False
    yield "manifest after the files", _manifest_last(release), False
    yield "no manifest", lambda m: [(i, d) for i, d in m if not i.name.endswith(MANIFEST)], False


def _manifest_last(release: Release) -> Attack:
    name = f"{release.top}/{MANIFEST}"
    return lambda m: (
        [(i, d) for i, d in m if i.name != name] + [(i, d) for i, d in m if i.name == name]
    )


def build(release_path: Path, out: Path, attack: Attack, recompute: bool) -> Path:
    """Write the variant of `release_path` that `attack` makes to `out`."""
    release = Release.read(release_path)
    members = attack(list(release.members))
    if recompute:
        members = _recompute(release, members)
    return write(out, members)
