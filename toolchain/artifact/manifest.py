"""The manifest of a `.plugin` file: every member's path, size, mode and sha256.

The writer describes what it packed (`manifest_of`, `dumps_manifest`); the installer reads
the manifest of an untrusted archive (`Manifest.parse`): clean relative paths, relative
links that stay inside the plugin, no setuid or setgid bit, each path listed once.
"""

from __future__ import annotations

import json
import posixpath
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from json.encoder import encode_basestring as _encode_str  # the C one when available
from pathlib import Path
from typing import Any

from toolchain.artifact.spec import dumps
from toolchain.core import settings
from toolchain.core.errors import ArtifactError
from toolchain.core.layout import INSTALLER_OWNED

_SHA = re.compile(r"^[0-9a-f]{64}$")
# Deeper or longer paths than any plugin needs, which the system may refuse (PATH_MAX).
MAX_DEPTH = 128
MAX_PATH = 3072
FORBIDDEN_BITS = stat.S_ISUID | stat.S_ISGID


class MemberKind(Enum):
    """What a member of a `.plugin` file is."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class Entry:
    """One packed member, relative to the plugin top, as the manifest describes it."""

    path: str
    kind: MemberKind
    mode: int = 0o644
    size: int = 0
    sha256: str = ""
    target: str = ""


def manifest_of(entries: Iterable[Entry]) -> dict[str, Any]:
    """The manifest document for `entries`."""
    files, links, dirs = [], [], []
    for e in sorted(entries, key=lambda e: e.path):
        if e.kind is MemberKind.FILE:
            files.append(
                {"path": e.path, "size": e.size, "mode": f"{e.mode:o}", "sha256": e.sha256}
            )
        elif e.kind is MemberKind.SYMLINK:
            links.append({"path": e.path, "target": e.target})
        else:
            dirs.append(e.path)
    return {"dirs": dirs, "files": files, "symlinks": links}


_FILE_KEYS = {"mode", "path", "sha256", "size"}
_FILE_ITEM = '  {\n   "mode": %s,\n   "path": %s,\n   "sha256": %s,\n   "size": %s\n  }'


def dumps_manifest(manifest: dict[str, Any]) -> bytes:
    """`dumps(manifest)` for a document made by `manifest_of`, without the slow indenter.

    With `indent`, `json` falls back to its pure-Python encoder; a manifest of 100,000
    files is assembled here from the C encoder's output of each value instead.
    """
    if set(manifest) != {"dirs", "files", "symlinks"}:
        return dumps(manifest)

    def enc(value: object) -> str:
        if type(value) is str:
            return _encode_str(value)
        if type(value) is int:
            return str(value)
        return json.dumps(value, ensure_ascii=False)

    parts = ["{\n"]
    for key in ("dirs", "files", "symlinks"):
        items = manifest[key]
        if not items:
            parts.append(f' "{key}": [],\n')
            continue
        if key == "dirs":
            body = ",\n".join(f"  {enc(d)}" for d in items)
        elif key == "files" and all(i.keys() == _FILE_KEYS for i in items):
            body = ",\n".join(
                _FILE_ITEM % (enc(i["mode"]), enc(i["path"]), enc(i["sha256"]), enc(i["size"]))
                for i in items
            )
        else:
            body = ",\n".join(
                "  {\n"
                + ",\n".join(f"   {enc(k)}: {enc(v)}" for k, v in sorted(i.items()))
                + "\n  }"
                for i in items
            )
        parts.append(f' "{key}": [\n{body}\n ],\n')
    parts[-1] = parts[-1][: -len(",\n")] + "\n"
    parts.append("}\n")
    return "".join(parts).encode()


def check_relpath(rel: str, where: str) -> str:
    """Return `rel` when it is a clean relative path; raise ArtifactError otherwise."""
    if not rel or "\0" in rel or "\\" in rel:
        raise ArtifactError(f"{where}: invalid member name {rel!r}")
    if rel.startswith("/"):
        raise ArtifactError(f"{where}: absolute path {rel!r} in the archive")
    parts = rel.split("/")
    if ".." in parts:
        raise ArtifactError(f"{where}: path {rel!r} climbs out with '..'")
    if any(p in ("", ".") for p in parts):
        raise ArtifactError(f"{where}: non-canonical path {rel!r} in the archive")
    if len(parts) > MAX_DEPTH or len(rel) > MAX_PATH:
        raise ArtifactError(
            f"{where}: path {rel[:60]!r}... is {len(parts)} directories deep and {len(rel)} "
            f"characters long (at most {MAX_DEPTH} and {MAX_PATH})"
        )
    return rel


def check_link_target(rel: str, target: str, where: str) -> None:
    if not target or "\0" in target or target.startswith("/"):
        raise ArtifactError(f"{where}: symlink {rel!r} -> {target!r} is not a relative link")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise ArtifactError(f"{where}: symlink {rel!r} -> {target!r} escapes the plugin")


@dataclass
class Manifest:
    """A manifest read from an untrusted archive, every path and mode checked."""

    files: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # size, mode, sha256
    links: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, doc: dict[str, Any], where: str) -> Manifest:
        out = cls()
        seen: set[str] = set()

        def claim(path: object) -> str:
            if not isinstance(path, str):
                raise ArtifactError(f"{where}: malformed manifest (path {path!r})")
            check_relpath(path, where)
            owned = next((o for o in INSTALLER_OWNED if path == o or path.startswith(o + "/")), "")
            if owned:
                raise ArtifactError(
                    f"{where}: {path!r} is the installer's own ({owned}); an archive may not "
                    "bring it: rebuild the artifact with make release"
                )
            if path in seen:
                raise ArtifactError(f"{where}: manifest lists {path!r} twice")
            seen.add(path)
            return path

        try:
            for item in doc["files"]:
                path = claim(item["path"])
                size, mode, sha = item["size"], int(item["mode"], 8), item["sha256"]
                if not isinstance(size, int) or size < 0 or not _SHA.match(sha):
                    raise ArtifactError(f"{where}: malformed manifest entry for {path!r}")
                if mode & FORBIDDEN_BITS:
                    raise ArtifactError(f"{where}: {path!r} has a setuid/setgid mode")
                out.files[path] = (size, 0o755 if mode & 0o111 else 0o644, sha)
            for item in doc["symlinks"]:
                path, target = claim(item["path"]), item["target"]
                if not isinstance(target, str):
                    raise ArtifactError(f"{where}: malformed manifest entry for {path!r}")
                check_link_target(path, target, where)
                out.links[path] = target
            for path in doc["dirs"]:
                out.dirs.add(claim(path))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ArtifactError(f"{where}: malformed manifest; rebuild the artifact") from None
        for path, target in out.links.items():
            out.check_climb(path, target, where)
        return out

    def check_climb(self, rel: str, target: str, where: str) -> None:
        """Refuse a link whose `..` climbs out of something that is not a directory here.

        `a/..` is `.` on paper only when `a` is a real directory: through a link (of the
        archive, or the installer's `local`, which links to the virtualenv) it leads
        wherever that link does, outside the plugin once it is installed.
        """
        walked: list[str] = [p for p in posixpath.dirname(rel).split("/") if p]
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part != "..":
                walked.append(part)
                continue
            through = "/".join(walked)
            if through not in self.dirs:
                raise ArtifactError(
                    f"{where}: symlink {rel!r} -> {target!r} climbs out of {through!r}, "
                    "which is not a directory of the plugin"
                )
            walked.pop()

    def limit(self) -> int:
        """Decompressed tar bytes this manifest can account for, headers included."""
        data = sum((size + 511) // 512 * 512 for size, _m, _s in self.files.values())
        entries = len(self.files) + len(self.links) + len(self.dirs) + 8
        return data + entries * 4096 + (1 << 20)


# Below this, the ratio is not checked: small text files compress well and harm nobody.
_RATIO_FLOOR = 64 << 20


def check_unpacked_size(manifest: Manifest, archive: Path) -> None:
    """Refuse, before anything is written, an archive that unpacks to too much (a bomb)."""
    files = manifest.files
    total = sum(size for size, _mode, _sha in files.values())
    biggest = max(files, key=lambda rel: files[rel][0], default="")
    cap = settings.max_unpacked_bytes(ArtifactError)
    if total > cap:
        raise ArtifactError(
            f"{archive}: unpacks to {total >> 20} MiB ({biggest!r} alone {files[biggest][0] >> 20} "
            f"MiB), over the limit of {cap >> 20} MiB; raise {settings.MAX_UNPACKED_MB} if "
            "the plugin is really that large"
        )
    packed = max(archive.stat().st_size, 1)
    ratio = settings.max_compression_ratio(ArtifactError)
    if total > _RATIO_FLOOR and total / packed > ratio:
        raise ArtifactError(
            f"{archive}: unpacks to {total / packed:.0f} times its size ({biggest!r} is "
            f"{files[biggest][0] >> 20} MiB), over the limit of {ratio:g}; raise "
            f"{settings.MAX_RATIO} if the plugin is really made of such data"
        )
