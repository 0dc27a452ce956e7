"""Safe extraction of an untrusted `.plugin` file (gzip tar or zip) into a staging directory.

Only regular files, directories and relative symlinks that stay inside the plugin are
accepted, and only as the archive's own manifest describes them: every member must be
listed with its size (checked before anything is written) and its sha256 (checked while
writing). Files are created with O_EXCL|O_NOFOLLOW before any symlink exists, so nothing
is ever written outside the staging directory. Decompressed bytes are bounded by what
the manifest accounts for, which defeats decompression bombs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from toolchain.artifact import read, spec
from toolchain.artifact.manifest import (
    FORBIDDEN_BITS,
    Manifest,
    check_link_target,
    check_relpath,
    check_unpacked_size,
)
from toolchain.core.errors import ArtifactError, InvalidName
from toolchain.core.layout import MANIFEST, METADATA, RELEASE_DIR, SIGNATURE, STATEMENT
from toolchain.core.names import check_name

_CHUNK = 1 << 16
_HEAD_LIMIT = 80 << 20  # decompressed bytes allowed before the manifest is known
_HEAD_MAX = read.HEAD_DOCUMENT_MAX  # metadata, manifest, and a signed statement
_LINK_MAX = 4096


@dataclass(frozen=True)
class Extracted:
    """What an extraction produced: the archive's top directory, metadata and manifest."""

    top: str
    metadata: dict[str, Any]
    manifest: dict[str, Any]


class _Bounded:
    """A read-only stream that fails once more than `limit` bytes were read from it."""

    def __init__(self, raw: gzip.GzipFile, limit: int, where: str) -> None:
        self.raw = raw
        self.limit = limit
        self.count = 0
        self.where = where

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise ArtifactError(
                f"{self.where}: decompresses to more than its manifest accounts for "
                "(decompression bomb?); refusing it"
            )
        return data


class _Sink:
    """Writes checked members under `dest`, which must not exist yet."""

    def __init__(self, dest: Path, where: str) -> None:
        self.dest = dest
        self.where = where
        self.top = ""
        self.seen: set[str] = set()
        self.manifest: Manifest | None = None
        self.manifest_doc: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        self.pending: bytes | None = None
        self.early_dirs: list[str] = []
        self.links: dict[str, str] = {}
        dest.mkdir(mode=0o755)

    def relative(self, name: str) -> str | None:
        """The member's path under the top directory (None for the top itself)."""
        name = name[:-1] if name.endswith("/") else name
        check_relpath(name, self.where)
        top, _sep, rel = name.partition("/")
        if not self.top:
            try:
                self.top = check_name(top)
            except InvalidName as exc:
                raise ArtifactError(f"{self.where}: top directory: {exc}") from None
        elif top != self.top:
            raise ArtifactError(f"{self.where}: {name!r} is outside the top directory {self.top}")
        if not rel:
            if "" in self.seen:
                raise ArtifactError(f"{self.where}: duplicate member {name!r}")
            self.seen.add("")
            return None
        if rel in self.seen:
            raise ArtifactError(f"{self.where}: duplicate member {name!r}")
        self.seen.add(rel)
        return rel

    def _need_manifest(self, rel: str) -> Manifest:
        if self.manifest is None:
            raise ArtifactError(
                f"{self.where}: {rel!r} comes before {METADATA} and {MANIFEST}; "
                "is it a .plugin file?"
            )
        return self.manifest

    def head(self, rel: str, data: bytes) -> None:
        """Take the metadata or manifest bytes; metadata waits for the manifest to be checked.
        A signed statement and its signature follow the manifest (`installer.trust`)."""
        if rel in (STATEMENT, SIGNATURE):  # right after the manifest, as readers expect
            if self.seen - {"", RELEASE_DIR, *_HEAD_MAX}:
                raise ArtifactError(f"{self.where}: {rel} comes after the plugin's files")
            self._need_manifest(rel)
            self._write(rel, iter([data]), len(data), 0o644, None)
            return
        if rel == METADATA:
            if self.manifest is None:
                self.pending = data
            else:
                self.file(rel, iter([data]), len(data))
            return
        self.manifest_doc = spec.load_json(data, self.where, rel)
        self.manifest = Manifest.parse(self.manifest_doc, self.where)
        check_unpacked_size(self.manifest, Path(self.where))
        self._write(rel, iter([data]), len(data), 0o644, None)
        for early in self.early_dirs:
            if early not in self.manifest.dirs:
                raise ArtifactError(f"{self.where}: directory {early!r} is not in the manifest")
        if self.pending is not None:
            self.file(METADATA, iter([self.pending]), len(self.pending))
            self.pending = None

    def check_size(self, rel: str, size: int) -> tuple[int, int, str]:
        """The manifest entry of file `rel`, refusing a member of a different size."""
        manifest = self._need_manifest(rel)
        expected = manifest.files.get(rel)
        if expected is None:
            raise ArtifactError(f"{self.where}: {rel!r} is not in the manifest")
        if size > expected[0]:
            raise ArtifactError(
                f"{self.where}: {rel!r} is larger ({size} bytes) than the manifest says "
                f"({expected[0]})"
            )
        if size != expected[0]:
            raise ArtifactError(
                f"{self.where}: {rel!r} has {size} bytes, the manifest says {expected[0]}"
            )
        return expected

    def file(self, rel: str, chunks: Iterator[bytes], size: int) -> None:
        """Write file `rel` from `chunks`, checking size and sha256 against the manifest."""
        _size, mode, sha = self.check_size(rel, size)
        self._write(rel, chunks, size, mode, sha)

    def _write(
        self, rel: str, chunks: Iterator[bytes], size: int, mode: int, sha: str | None
    ) -> None:
        path = self.dest / rel
        self._parent(rel)
        digest = hashlib.sha256()
        written = 0
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise ArtifactError(f"{self.where}: cannot create {rel!r}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > size:
                    raise ArtifactError(f"{self.where}: {rel!r} is larger than the manifest says")
                digest.update(chunk)
                out.write(chunk)
            os.fchmod(out.fileno(), mode)
        if written != size:
            raise ArtifactError(f"{self.where}: {rel!r} is truncated")
        if sha is not None and digest.hexdigest() != sha:
            raise ArtifactError(f"{self.where}: {rel!r} does not match its sha256 in the manifest")
        if rel == METADATA:
            self.metadata = spec.load_json(path.read_bytes(), self.where, rel)

    def _parent(self, rel: str) -> None:
        parent = self.dest / posixpath.dirname(rel)
        try:
            parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError:
            raise ArtifactError(f"{self.where}: {rel!r} conflicts with another member") from None

    def directory(self, rel: str) -> None:
        """Create directory `rel`, which the manifest must list (checked once it is known)."""
        if self.manifest is None:
            self.early_dirs.append(rel)
        elif rel not in self.manifest.dirs:
            raise ArtifactError(f"{self.where}: directory {rel!r} is not in the manifest")
        path = self.dest / rel
        self._parent(rel)
        try:
            path.mkdir(mode=0o755, exist_ok=True)
        except OSError:
            raise ArtifactError(f"{self.where}: {rel!r} conflicts with another member") from None
        if path.is_symlink() or not path.is_dir():
            raise ArtifactError(f"{self.where}: {rel!r} conflicts with another member")

    def symlink(self, rel: str, target: str) -> None:
        """Remember symlink `rel`; links are created once every file is written."""
        expected = self._need_manifest(rel).links.get(rel)
        if expected is None:
            raise ArtifactError(f"{self.where}: symlink {rel!r} is not in the manifest")
        check_link_target(rel, target, self.where)
        if target != expected:
            raise ArtifactError(f"{self.where}: symlink {rel!r} differs from the manifest")
        self.links[rel] = target

    def finish(self) -> Extracted:
        """Check completeness, create the symlinks, and return what was extracted."""
        manifest = self.manifest
        if manifest is None or not self.metadata:
            raise ArtifactError(f"{self.where}: no {METADATA} or {MANIFEST}; not a .plugin file")
        missing = sorted((set(manifest.files) | set(manifest.links) | manifest.dirs) - self.seen)
        if missing:
            raise ArtifactError(
                f"{self.where}: {len(missing)} member(s) listed in the manifest are missing "
                f"(first: {missing[0]!r}); the archive is truncated or its manifest lies"
            )
        for rel in sorted(self.links):
            parts = rel.split("/")
            if any("/".join(parts[:i]) in self.links for i in range(1, len(parts))):
                raise ArtifactError(f"{self.where}: {rel!r} lies under a symlink")
            self._parent(rel)
            try:
                os.symlink(self.links[rel], self.dest / rel)
            except OSError:
                raise ArtifactError(
                    f"{self.where}: {rel!r} conflicts with another member"
                ) from None
        real = os.path.realpath(self.dest)
        for rel in self.links:
            resolved = os.path.realpath(self.dest / rel)
            if resolved != real and not resolved.startswith(real + os.sep):
                raise ArtifactError(f"{self.where}: symlink {rel!r} escapes the plugin")
        return Extracted(self.top, self.metadata, self.manifest_doc)


def _tar_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def _extract_tar(path: Path, sink: _Sink) -> None:
    where = str(path)
    with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        bounded = _Bounded(gz, _HEAD_LIMIT, where)
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=bounded, mode="r|", tarinfo=read.BoundedTarInfo
        ) as tar:
            for member in tar:
                rel = sink.relative(member.name)
                if member.mode & FORBIDDEN_BITS:
                    raise ArtifactError(f"{where}: {member.name!r} has a setuid/setgid mode")
                if member.isdir():
                    if rel is not None:
                        sink.directory(rel)
                    continue
                if rel is None:
                    raise ArtifactError(f"{where}: the top {member.name!r} is not a directory")
                if member.islnk():
                    raise ArtifactError(f"{where}: hardlink {member.name!r} refused")
                if member.issym():
                    sink.symlink(rel, member.linkname)
                    continue
                if not member.isreg() or member.issparse():
                    raise ArtifactError(
                        f"{where}: {member.name!r} is a device, FIFO or other special member"
                    )
                if rel in _HEAD_MAX:
                    if member.size > _HEAD_MAX[rel]:
                        raise ArtifactError(f"{where}: {rel} is implausibly large")
                    handle = tar.extractfile(member)
                    sink.head(rel, handle.read() if handle else b"")
                    if sink.manifest is not None and rel == MANIFEST:
                        bounded.limit = bounded.count + sink.manifest.limit()
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    raise ArtifactError(f"{where}: cannot read {member.name!r}")
                sink.file(rel, _tar_chunks(handle), member.size)


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if mode & FORBIDDEN_BITS:
        raise ArtifactError(f"{info.filename!r} has a setuid/setgid mode")
    kind = stat.S_IFMT(mode)
    if info.is_dir() or kind == stat.S_IFDIR:
        return "dir"
    if kind == stat.S_IFLNK:
        return "symlink"
    if kind in (0, stat.S_IFREG):
        return "file"
    return "special"


def _zip_chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    with zf.open(info) as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _extract_zip(path: Path, sink: _Sink) -> None:
    where = str(path)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if not infos:
            raise ArtifactError(f"{where}: empty archive")
        rels: list[tuple[zipfile.ZipInfo, str | None]] = [
            (info, sink.relative(info.filename)) for info in infos
        ]
        by_rel = {rel: info for info, rel in rels}
        for head in _HEAD_MAX:  # the manifest first, as in a tar
            info = by_rel.get(head)
            if info is None and head in (STATEMENT, SIGNATURE):
                continue
            if info is None or _zip_kind(info) != "file":
                raise ArtifactError(f"{where}: no {head} in the archive; is it a .plugin file?")
            if info.file_size > _HEAD_MAX[head]:
                raise ArtifactError(f"{where}: {head} is implausibly large")
            sink.head(head, zf.read(info))
        for info, rel in rels:
            if info.flag_bits & 0x1:
                raise ArtifactError(f"{where}: {info.filename!r} is encrypted")
            try:
                kind = _zip_kind(info)
            except ArtifactError as exc:
                raise ArtifactError(f"{where}: {exc}") from None
            if rel in _HEAD_MAX:
                continue
            if kind == "dir":
                if rel is not None:
                    sink.directory(rel)
                continue
            if rel is None:
                raise ArtifactError(f"{where}: the top {info.filename!r} is not a directory")
            if kind == "symlink":
                if info.file_size > _LINK_MAX:
                    raise ArtifactError(f"{where}: symlink {rel!r} has an oversized target")
                target = zf.read(info).decode("utf-8")
                sink.symlink(rel, target)
            elif kind == "file":
                sink.file(rel, _zip_chunks(zf, info), info.file_size)
            else:
                raise ArtifactError(
                    f"{where}: {info.filename!r} is a device, FIFO or other special member"
                )


def extract(path: Path, dest: Path) -> Extracted:
    """Extract the `.plugin` file `path` into the new directory `dest`, checking everything.

    On failure an ArtifactError names the archive and the offending member; `dest` may
    hold a partial tree that the caller removes.
    """
    kind = read.detect(path)
    sink = _Sink(dest, str(path))
    try:
        if kind == "zip":
            _extract_zip(path, sink)
        else:
            _extract_tar(path, sink)
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        NotImplementedError,  # zipfile: an unsupported compression method
        RuntimeError,
    ) as exc:
        raise ArtifactError(f"{path}: corrupt or truncated archive: {exc}") from None
    except UnicodeError:
        raise ArtifactError(f"{path}: member names are not valid text") from None
    except OSError as exc:  # the disk is full, a file size limit, a path the system refuses
        where = f" {exc.filename}" if exc.filename else ""
        raise ArtifactError(
            f"{path}: cannot unpack it:{where} {exc.strerror or exc}; free space (or raise "
            "the limit) and install again"
        ) from None
    return sink.finish()
