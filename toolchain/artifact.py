"""The `.plugin` file format: a reproducible gzip tar with metadata and a manifest first.

Layout inside the archive, under one top directory named after the plugin::

    NAME/.release/metadata.json   name, version, ..., python tag, platform, size
    NAME/.release/manifest.json   path, size, mode, sha256 of every file; symlinks
    NAME/.release/wheelhouse/*.whl
    NAME/...                      the plugin files kept by .releaseignore

Metadata and manifest come first so that readers need not decompress the rest.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import stat
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode_str  # the C one when available
from pathlib import Path
from typing import IO, Any, BinaryIO

from toolchain.errors import ArtifactError
from toolchain.layout import MANIFEST, METADATA, RELEASE_DIR
from toolchain.tarstream import TarGzWriter, TarWriter, crc32_combine, gzip_header, gzip_trailer

_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_NO_SOURCE = Path()  # entries of `pack`, described after being packed
# Release compression: most bytes are wheels (already deflated), and level 6 buys little
# on the rest for twice the time of level 3.
COMPRESSLEVEL = 3
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


def _digest_fd(fd: int, size: int) -> str:
    """Hex sha256 of the next `size` bytes of `fd` (fewer if the file ends sooner)."""
    digest = hashlib.sha256()
    left = size
    while left > 0 and (chunk := os.read(fd, min(left, _CHUNK))):
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


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


_NOT_PACKABLE = "not a regular file, directory or symlink; remove it"


@contextlib.contextmanager
def _member(source: str) -> Iterator[tuple[int, os.stat_result] | str]:
    """Open a member once, following no symlink: (fd, fstat) of a file or directory, or a
    symlink's target; anything else (a FIFO, a device...) is an ArtifactError."""
    try:
        fd = os.open(source, _OPEN_FLAGS | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a symlink (ELOOP), or unreadable: say what it is
        st = os.lstat(source)
        if stat.S_ISLNK(st.st_mode):
            yield os.readlink(source)
            return
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise ArtifactError(f"{source}: {_NOT_PACKABLE}") from None
        raise
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise ArtifactError(f"{source}: {_NOT_PACKABLE}")
        yield fd, st
    finally:
        os.close(fd)


def _file_mode(st: os.stat_result) -> int:
    return 0o755 if st.st_mode & 0o111 else 0o644


def scan(root: Path, relpaths: Iterable[str]) -> list[Entry]:
    """Describe `relpaths` under `root` with normalised modes, sizes and hashes.

    A file is opened once (no symlink followed) and described by `fstat` on that
    descriptor: its hash covers exactly the `size` bytes that `write` will pack.
    """
    entries = []
    base = os.fspath(root)
    for rel in relpaths:
        full = os.path.join(base, rel)
        with _member(full) as member:
            if isinstance(member, str):
                entries.append(Entry(rel, Path(full), "symlink", 0o777, target=member))
                continue
            fd, st = member
            if stat.S_ISREG(st.st_mode):
                digest = _digest_fd(fd, st.st_size)
                entries.append(Entry(rel, Path(full), "file", _file_mode(st), st.st_size, digest))
            else:
                entries.append(Entry(rel, Path(full), "dir", 0o755))
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


def _documents(
    entries: list[Entry], metadata: dict[str, Any]
) -> tuple[dict[str, Any], bytes, bytes]:
    """(manifest, metadata bytes, manifest bytes); the metadata gets the files' total size."""
    metadata = dict(metadata, size=sum(e.size for e in entries))
    meta_bytes = dumps(metadata)
    meta_entry = Entry(
        METADATA, _NO_SOURCE, "file", 0o644, len(meta_bytes), hashlib.sha256(meta_bytes).hexdigest()
    )
    release_dir = Entry(RELEASE_DIR, _NO_SOURCE, "dir", 0o755)
    manifest = manifest_of([*entries, meta_entry, release_dir])
    return manifest, meta_bytes, dumps_manifest(manifest)


@contextlib.contextmanager
def _atomic(out: Path) -> Iterator[BinaryIO]:
    """A temporary file beside `out`, renamed to it (mode 644) when the block succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            yield raw
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _add_head(tar: TarWriter, top: str, meta: bytes, manifest: bytes, mtime: int) -> None:
    tar.add_dir(top, mtime)
    tar.add_dir(f"{top}/{RELEASE_DIR}", mtime)
    tar.add_bytes(f"{top}/{METADATA}", meta, 0o644, mtime)
    tar.add_bytes(f"{top}/{MANIFEST}", manifest, 0o644, mtime)


def write(
    out: Path,
    top: str,
    entries: list[Entry],
    metadata: dict[str, Any],
    *,
    mtime: int,
    compresslevel: int = COMPRESSLEVEL,
) -> dict[str, Any]:
    """Write the artifact to `out` atomically and reproducibly; return its manifest.

    `metadata` gets the total size of the files; metadata and manifest are packed first.
    Files are streamed from their sources: memory does not grow with the artifact.
    """
    entries = [e for e in entries if e.path not in (METADATA, MANIFEST, RELEASE_DIR)]
    manifest, meta_bytes, man_bytes = _documents(entries, metadata)
    with _atomic(out) as raw, TarGzWriter(raw, compresslevel) as tar:
        _add_head(tar, top, meta_bytes, man_bytes, mtime)
        for e in sorted(entries, key=lambda e: e.path):
            name = f"{top}/{e.path}"
            if e.kind == "dir":
                tar.add_dir(name, mtime)
            elif e.kind == "symlink":
                tar.add_symlink(name, e.target, mtime)
            else:
                tar.add_file(name, e.source, e.size, e.mode, mtime)
    return manifest


def pack(
    out: Path,
    top: str,
    members: Iterable[tuple[str, str]],
    metadata: dict[str, Any],
    *,
    mtime: int,
    compresslevel: int = COMPRESSLEVEL,
) -> dict[str, Any]:
    """`write` for `(path in the archive, source path)` pairs: each file is read once.

    The same archive as `scan` then `write`, without reading every file twice: the
    members are deflated first into a temporary file while they are hashed, then the
    head (metadata, manifest) is deflated in front of them in the same gzip stream
    (deflate data can be concatenated after a sync flush; the CRC-32s are combined).
    """
    entries: list[Entry] = []
    members = sorted((p, s) for p, s in members if p not in (METADATA, MANIFEST, RELEASE_DIR))
    with tempfile.TemporaryFile(dir=out.parent) as spool:
        with TarWriter(spool, compresslevel, final=False) as body:
            for path, source in members:
                entries.append(_pack_one(body, f"{top}/{path}", path, source, mtime))
        manifest, meta_bytes, man_bytes = _documents(entries, metadata)
        with _atomic(out) as raw:
            raw.write(gzip_header(compresslevel))
            with TarWriter(raw, compresslevel, final=False) as head:
                _add_head(head, top, meta_bytes, man_bytes, mtime)
            spool.seek(0)
            shutil.copyfileobj(spool, raw, _CHUNK)
            with TarWriter(raw, compresslevel, final=True) as tail:
                tail.end_archive(offset=head.size + body.size)
            crc = crc32_combine(crc32_combine(head.crc, body.crc, body.size), tail.crc, tail.size)
            raw.write(gzip_trailer(crc, head.size + body.size + tail.size))
    return manifest


def _pack_one(tar: TarWriter, name: str, path: str, source: str, mtime: int) -> Entry:
    """Pack one member, opened once (no symlink followed); describe it for the manifest."""
    with _member(source) as member:
        if isinstance(member, str):
            tar.add_symlink(name, member, mtime)
            return Entry(path, _NO_SOURCE, "symlink", 0o777, target=member)
        fd, st = member
        if stat.S_ISREG(st.st_mode):
            mode = _file_mode(st)
            digest = tar.add_fd(name, fd, st.st_size, mode, mtime)
            return Entry(path, _NO_SOURCE, "file", mode, st.st_size, digest)
        tar.add_dir(name, mtime)
        return Entry(path, _NO_SOURCE, "dir", 0o755)


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


def load_json(data: bytes, path: Path | str, what: str) -> dict[str, Any]:
    """Parse `what` (a JSON object) read from the artifact `path`; ArtifactError if it is not."""
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
    meta = load_json(found[METADATA], path, METADATA)
    manifest = load_json(found[MANIFEST], path, MANIFEST)
    return top, meta, manifest
