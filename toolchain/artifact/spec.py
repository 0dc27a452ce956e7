"""What the writer and the readers of `.plugin` files agree on: names, tags, constants and
canonical JSON.

The layout inside the archive, under one top directory named after the plugin::

    NAME/.release/metadata.json   name, version, ..., python tag, platform, size
    NAME/.release/manifest.json   path, size, mode, sha256 of every file; symlinks
    NAME/.release/wheelhouse/*.whl
    NAME/...                      the plugin files kept by .releaseignore

Metadata and manifest come first so that readers need not decompress the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

from toolchain.core.errors import ArtifactError

READ_CHUNK = 1 << 20
# Bumped when the layout of a plugin directory or of a `.plugin` file changes.
FORMAT_VERSION = 1
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    fd = os.open(path, OPEN_FLAGS)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, READ_CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def dumps(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, fixed indentation, final newline)."""
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def load_json(data: bytes, path: Path | str, what: str) -> dict[str, Any]:
    """Parse `what` (a JSON object) read from the artifact `path`; ArtifactError if it is not."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ArtifactError(f"{path}: {what} is not valid JSON; rebuild the artifact") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: {what} is not a JSON object; rebuild the artifact")
    return doc
