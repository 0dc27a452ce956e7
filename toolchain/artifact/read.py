"""Reading a `.plugin` file's head without extracting it: its format (from its first bytes)
and its top directory, metadata and manifest, which come first in the archive.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

from toolchain.artifact import signature
from toolchain.artifact.spec import GZIP_MAGIC, ZIP_MAGIC, load_json
from toolchain.core.errors import ArtifactError
from toolchain.core.layout import MANIFEST, METADATA, RELEASE_DIR, SIGNATURE, STATEMENT


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


# tarfile reads a pax or GNU long-name header whole, before any check of ours: a header
# declaring hundreds of MB of (well-compressed) zeros would be held in memory. Real ones
# carry a path or a few records.
HEADER_MAX = 1 << 20
_EXTENDED = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}
# The most the head's documents may hold (the manifest of 100,000 files is about 20 MB).
HEAD_DOCUMENT_MAX = {
    METADATA: 1 << 20,
    MANIFEST: 64 << 20,
    STATEMENT: signature.DOCUMENT_MAX,
    SIGNATURE: signature.DOCUMENT_MAX,
}


class BoundedTarInfo(tarfile.TarInfo):
    """A tar header whose extended (pax, GNU long name) part is refused past HEADER_MAX."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > HEADER_MAX:
            raise tarfile.HeaderError(
                f"an extended header of {self.size} bytes (at most {HEADER_MAX})"
            )
        return super()._proc_member(archive)  # type: ignore[misc,no-any-return]


def _document(path: Path, rel: str, size: int) -> None:
    if size > HEAD_DOCUMENT_MAX[rel]:
        raise ArtifactError(
            f"{path}: {rel} has {size} bytes, more than {HEAD_DOCUMENT_MAX[rel]}; "
            "is it a .plugin file?"
        )


def read_documents(path: Path) -> tuple[str, dict[str, bytes]]:
    """(top directory, head documents by path) of an artifact, reading only its head: the
    metadata and manifest, and the statement and its signature when it is signed."""
    found: dict[str, bytes] = {}
    top = ""
    try:
        if detect(path) == "zip":
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                top = names[0].split("/")[0] if names else ""
                for rel in HEAD_DOCUMENT_MAX:
                    try:
                        info = zf.getinfo(f"{top}/{rel}")
                    except KeyError:
                        continue
                    _document(path, rel, info.file_size)
                    with zf.open(info) as stream:
                        found[rel] = stream.read(HEAD_DOCUMENT_MAX[rel] + 1)
                    _document(path, rel, len(found[rel]))
        else:
            with tarfile.open(path, mode="r|gz", tarinfo=BoundedTarInfo) as tar:
                for member in tar:
                    top = top or member.name.split("/")[0]
                    rel = member.name.partition("/")[2]
                    if rel in HEAD_DOCUMENT_MAX and member.isfile():
                        _document(path, rel, member.size)
                        handle: IO[bytes] | None = tar.extractfile(member)
                        found[rel] = handle.read(member.size) if handle else b""
                    elif rel not in ("", RELEASE_DIR):
                        break  # the head is over
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ArtifactError(f"{path}: corrupt or truncated archive: {exc}") from None
    for rel in (METADATA, MANIFEST):
        if rel not in found:
            raise ArtifactError(f"{path}: no {rel} in the archive; is it a .plugin file?")
    return top, found


def read_head(path: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Return (top directory, metadata, manifest) of an artifact, reading only its head."""
    top, found = read_documents(path)
    meta = load_json(found[METADATA], path, METADATA)
    manifest = load_json(found[MANIFEST], path, MANIFEST)
    return top, meta, manifest


def read_member(path: Path, rel: str, limit: int = 1 << 20) -> bytes | None:
    """The content of the regular member `rel` (relative to the top) of an artifact, at most
    `limit` bytes (more is an ArtifactError); None when there is no such member."""
    try:
        if detect(path) == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.filename.partition("/")[2] == rel and not info.is_dir():
                        if info.file_size > limit:
                            raise ArtifactError(f"{path}: {rel} is over {limit} bytes")
                        with zf.open(info) as stream:
                            return stream.read(limit + 1)[:limit]
            return None
        with tarfile.open(path, mode="r|gz", tarinfo=BoundedTarInfo) as tar:
            for member in tar:
                if member.name.partition("/")[2] == rel and member.isfile():
                    if member.size > limit:
                        raise ArtifactError(f"{path}: {rel} is over {limit} bytes")
                    handle = tar.extractfile(member)
                    return handle.read(member.size) if handle else b""
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        EOFError,
        OSError,
        gzip.BadGzipFile,
        zlib.error,
    ) as exc:
        raise ArtifactError(f"{path}: corrupt or truncated archive: {exc}") from None
    return None


def verify(path: Path, manifest: dict[str, Any]) -> int:
    """Read the whole archive and check every file against `manifest`; return the count.

    Nothing is written: a truncated, corrupt or altered archive is an ArtifactError.
    """
    expected = {
        str(f.get("path")): (f.get("size"), f.get("sha256"))
        for f in manifest.get("files", [])
        if isinstance(f, dict)
    }
    seen: set[str] = set()

    def check(rel: str, size: int, stream: IO[bytes]) -> None:
        if rel not in expected:
            return  # metadata and manifest themselves, or listed elsewhere (dirs, links)
        digest = hashlib.sha256()
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
        if (size, digest.hexdigest()) != expected[rel]:
            raise ArtifactError(f"{path}: {rel!r} does not match the manifest")
        seen.add(rel)

    try:
        if detect(path) == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    rel = info.filename.partition("/")[2]
                    if not info.is_dir():
                        with zf.open(info) as stream:
                            check(rel, info.file_size, stream)
        else:
            with tarfile.open(path, mode="r|gz", tarinfo=BoundedTarInfo) as tar:
                for member in tar:
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        check(member.name.partition("/")[2], member.size, handle)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ArtifactError(f"{path}: corrupt or truncated archive: {exc}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ArtifactError(f"{path}: {missing[0]!r}{more} missing from the archive")
    return len(seen)
