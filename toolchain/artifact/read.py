"""Reading a `.plugin` file's head without extracting it: its format (from its first bytes)
and its top directory, metadata and manifest, which come first in the archive.
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any

from toolchain.artifact.spec import GZIP_MAGIC, ZIP_MAGIC, load_json
from toolchain.core.errors import ArtifactError
from toolchain.core.layout import MANIFEST, METADATA, RELEASE_DIR


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
