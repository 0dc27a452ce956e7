"""The `.plugin` file format: a reproducible gzip tar with metadata and a manifest first.

Layout inside the archive, under one top directory named after the plugin::

    NAME/.release/metadata.json   name, version, ..., python tag, platform, size
    NAME/.release/manifest.json   path, size, mode, sha256 of every file; symlinks
    NAME/.release/wheelhouse/*.whl
    NAME/...                      the plugin files kept by .releaseignore

Metadata and manifest come first so that readers need not decompress the rest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from toolchain.errors import ArtifactError
from toolchain.layout import MANIFEST, METADATA, RELEASE_DIR

_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


def platform_tag() -> str:
    """This machine's platform as used in wheel tags and artifact names (`linux_x86_64`)."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def python_tag() -> str:
    """The running interpreter's tag (`cp311`)."""
    impl = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, "py")
    return f"{impl}{sys.version_info.major}{sys.version_info.minor}"


def artifact_name(name: str, version: str, release: str, platform: str | None = None) -> str:
    """`NAME-VERSION-RELEASE.PLATFORM.plugin`."""
    return f"{name}-{version}-{release}.{platform or platform_tag()}.plugin"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One member to pack: a file, a directory or a symlink, relative to the plugin top."""

    path: str
    source: Path
    kind: str  # "file" | "dir" | "symlink"
    mode: int = 0o644
    size: int = 0
    sha256: str = ""
    target: str = ""


def scan(root: Path, relpaths: Iterable[str]) -> list[Entry]:
    """Describe `relpaths` under `root` with normalised modes, sizes and hashes."""
    entries = []
    for rel in relpaths:
        src = root / rel
        st = src.lstat()
        if stat.S_ISLNK(st.st_mode):
            entries.append(Entry(rel, src, "symlink", 0o777, target=os.readlink(src)))
        elif stat.S_ISDIR(st.st_mode):
            entries.append(Entry(rel, src, "dir", 0o755))
        elif stat.S_ISREG(st.st_mode):
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            entries.append(Entry(rel, src, "file", mode, st.st_size, sha256_file(src)))
        else:
            raise ArtifactError(f"{src}: not a regular file, directory or symlink; remove it")
    return entries


def manifest_of(entries: Iterable[Entry]) -> dict[str, Any]:
    """The manifest document for `entries`."""
    files, links, dirs = [], [], []
    for e in sorted(entries, key=lambda e: e.path):
        if e.kind == "file":
            files.append(
                {"path": e.path, "size": e.size, "mode": f"{e.mode:o}", "sha256": e.sha256}
            )
        elif e.kind == "symlink":
            links.append({"path": e.path, "target": e.target})
        else:
            dirs.append(e.path)
    return {"dirs": dirs, "files": files, "symlinks": links}


def dumps(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, fixed indentation, final newline)."""
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _info(
    name: str, mtime: int, kind: bytes, mode: int, size: int = 0, target: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = target
    return info


def write(
    out: Path,
    top: str,
    entries: list[Entry],
    metadata: dict[str, Any],
    *,
    mtime: int,
    compresslevel: int = 6,
) -> dict[str, Any]:
    """Write the artifact to `out` atomically and reproducibly; return its manifest.

    `metadata` gets the total size of the files; metadata and manifest are packed first.
    """
    entries = [e for e in entries if e.path not in (METADATA, MANIFEST, RELEASE_DIR)]
    metadata = dict(metadata, size=sum(e.size for e in entries))
    meta_bytes = dumps(metadata)
    meta_entry = Entry(
        METADATA, Path(), "file", 0o644, len(meta_bytes), hashlib.sha256(meta_bytes).hexdigest()
    )
    release_dir = Entry(RELEASE_DIR, Path(), "dir", 0o755)
    manifest = manifest_of([*entries, meta_entry, release_dir])
    man_bytes = dumps(manifest)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            # gzip header without file name and with time 0: reproducible.
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
            ) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    tar.addfile(_info(top, mtime, tarfile.DIRTYPE, 0o755))
                    tar.addfile(_info(f"{top}/{RELEASE_DIR}", mtime, tarfile.DIRTYPE, 0o755))
                    for path, data in ((METADATA, meta_bytes), (MANIFEST, man_bytes)):
                        info = _info(f"{top}/{path}", mtime, tarfile.REGTYPE, 0o644, len(data))
                        tar.addfile(info, io.BytesIO(data))
                    for e in sorted(entries, key=lambda e: e.path):
                        name = f"{top}/{e.path}"
                        if e.kind == "dir":
                            tar.addfile(_info(name, mtime, tarfile.DIRTYPE, 0o755))
                        elif e.kind == "symlink":
                            tar.addfile(_info(name, mtime, tarfile.SYMTYPE, 0o777, target=e.target))
                        else:
                            with e.source.open("rb") as handle:
                                info = _info(name, mtime, tarfile.REGTYPE, e.mode, e.size)
                                tar.addfile(info, handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


def detect(path: Path) -> str:
    """'tar' or 'zip', from the file's first bytes (never from its name)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read: {exc.strerror}") from None
    if head.startswith(GZIP_MAGIC):
        return "tar"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    raise ArtifactError(f"{path}: not a .plugin file (neither gzip tar nor zip)")


def _load_json(data: bytes, path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ArtifactError(f"{path}: {what} is not valid JSON; rebuild the artifact") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: {what} is not a JSON object; rebuild the artifact")
    return doc


def read_head(path: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Return (top directory, metadata, manifest) of an artifact, reading only its head."""
    found: dict[str, bytes] = {}
    top = ""
    try:
        if detect(path) == "zip":
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                top = names[0].split("/")[0] if names else ""
                for rel in (METADATA, MANIFEST):
                    try:
                        found[rel] = zf.read(f"{top}/{rel}")
                    except KeyError:
                        pass
        else:
            with tarfile.open(path, mode="r|gz") as tar:
                for member in tar:
                    top = top or member.name.split("/")[0]
                    rel = member.name.partition("/")[2]
                    if rel in (METADATA, MANIFEST) and member.isfile():
                        handle: IO[bytes] | None = tar.extractfile(member)
                        found[rel] = handle.read(64 << 20) if handle else b""
                    if len(found) == 2 or (rel and not rel.startswith(RELEASE_DIR)):
                        break
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ArtifactError(f"{path}: corrupt or truncated archive: {exc}") from None
    for rel in (METADATA, MANIFEST):
        if rel not in found:
            raise ArtifactError(f"{path}: no {rel} in the archive; is it a .plugin file?")
    meta = _load_json(found[METADATA], path, METADATA)
    manifest = _load_json(found[MANIFEST], path, MANIFEST)
    return top, meta, manifest
