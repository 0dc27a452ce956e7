"""The one writer of `.plugin` files, used by `make release`, `plugins.repackage` and the tests.

The archive is a reproducible gzip tar (sorted members, fixed mtime, normalised modes,
no user names, a gzip header without name or time) whose metadata and manifest come
first, so that readers need not decompress the rest. Each member is read once: it is
deflated into a spool while it is hashed, then the head is deflated in front of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from toolchain.artifact import signature
from toolchain.artifact.manifest import Entry, MemberKind, dumps_manifest, manifest_of
from toolchain.artifact.spec import OPEN_FLAGS, READ_CHUNK, dumps
from toolchain.artifact.tarstream import TarWriter, crc32_combine, gzip_header, gzip_trailer
from toolchain.core.errors import ArtifactError
from toolchain.core.layout import MANIFEST, METADATA, RELEASE_DIR, SIGNATURE, STATEMENT

# Release compression: most bytes are wheels (already deflated), and level 6 buys little
# on the rest for twice the time of level 3.
COMPRESSLEVEL = 3
_HEAD = (METADATA, MANIFEST, STATEMENT, SIGNATURE, RELEASE_DIR)  # written by pack itself
_NOT_PACKABLE = "not a regular file, directory or symlink; remove it"


@contextlib.contextmanager
def _member(source: str) -> Iterator[tuple[int, os.stat_result] | str]:
    """Open a member once, following no symlink: (fd, fstat) of a file or directory, or a
    symlink's target; anything else (a FIFO, a device...) is an ArtifactError."""
    try:
        fd = os.open(source, OPEN_FLAGS | os.O_NOFOLLOW | os.O_NONBLOCK)
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


def _documents(
    entries: list[Entry], metadata: dict[str, Any]
) -> tuple[dict[str, Any], bytes, bytes]:
    """(manifest, metadata bytes, manifest bytes); the metadata gets the files' total size."""
    metadata = dict(metadata, size=sum(e.size for e in entries))
    meta_bytes = dumps(metadata)
    meta_entry = Entry(
        METADATA, MemberKind.FILE, 0o644, len(meta_bytes), hashlib.sha256(meta_bytes).hexdigest()
    )
    release_dir = Entry(RELEASE_DIR, MemberKind.DIR, 0o755)
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


def _add_head(tar: TarWriter, top: str, docs: dict[str, bytes], mtime: int) -> None:
    tar.add_dir(top, mtime)
    tar.add_dir(f"{top}/{RELEASE_DIR}", mtime)
    for rel in (METADATA, MANIFEST, STATEMENT, SIGNATURE):
        if rel in docs:
            tar.add_bytes(f"{top}/{rel}", docs[rel], 0o644, mtime)


def pack(
    out: Path,
    top: str,
    members: Iterable[tuple[str, str]],
    metadata: dict[str, Any],
    *,
    mtime: int,
    compresslevel: int = COMPRESSLEVEL,
    sign: Callable[[bytes], bytes] | None = None,
) -> dict[str, Any]:
    """Write the artifact `out` (atomically) from `(path in the archive, source path)` pairs.

    `metadata` gets the total size of the files; the manifest describes every member as
    packed. The members are deflated first into a temporary file while they are hashed,
    then the head (metadata, manifest) is deflated in front of them in the same gzip
    stream (deflate data can be concatenated after a sync flush; the CRC-32s are
    combined). Memory does not grow with the artifact; the manifest is returned.
    With `sign` (statement bytes -> armored signature), the head also carries the signed
    statement (`artifact.signature`).
    """
    entries: list[Entry] = []
    members = sorted((p, s) for p, s in members if p not in _HEAD)
    with tempfile.TemporaryFile(dir=out.parent) as spool:
        with TarWriter(spool, compresslevel, final=False) as body:
            for path, source in members:
                entries.append(_pack_one(body, f"{top}/{path}", path, source, mtime))
        manifest, meta_bytes, man_bytes = _documents(entries, metadata)
        docs = {METADATA: meta_bytes, MANIFEST: man_bytes}
        if sign is not None:
            docs[STATEMENT] = signature.statement(metadata, meta_bytes, man_bytes)
            docs[SIGNATURE] = sign(docs[STATEMENT])
        with _atomic(out) as raw:
            raw.write(gzip_header(compresslevel))
            with TarWriter(raw, compresslevel, final=False) as head:
                _add_head(head, top, docs, mtime)
            spool.seek(0)
            shutil.copyfileobj(spool, raw, READ_CHUNK)
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
            return Entry(path, MemberKind.SYMLINK, 0o777, target=member)
        fd, st = member
        if stat.S_ISREG(st.st_mode):
            mode = _file_mode(st)
            digest = tar.add_fd(name, fd, st.st_size, mode, mtime)
            return Entry(path, MemberKind.FILE, mode, st.st_size, digest)
        tar.add_dir(name, mtime)
        return Entry(path, MemberKind.DIR, 0o755)
