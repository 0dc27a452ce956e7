"""What a release's signature covers, and checking it.

A signed release carries, after its manifest, a statement and the statement's OpenSSH
signature (namespace `plugin`)::

    plugin-toolchain signed release 1
    name: NAME
    version: VERSION
    release: RELEASE
    metadata: sha256:HEX       (of .release/metadata.json, byte for byte)
    manifest: sha256:HEX       (of .release/manifest.json, which hashes every file)

so the signature binds the plugin's identity to every byte of its content, and
`ssh-keygen -Y verify -n plugin -s statement.sig < statement` plus `sha256sum` check it
without our tools. Who may sign is the installer's business (`installer.trust`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.artifact import sshsig
from toolchain.core.errors import ArtifactError
from toolchain.core.layout import MANIFEST, METADATA, SIGNATURE, SIGNED_COPY, STATEMENT

NAMESPACE = "plugin"
HEADER = "plugin-toolchain signed release 1"
DOCUMENT_MAX = 16 << 10  # statement and signature: a few hundred bytes in practice
_FIELDS = ("name", "version", "release", "metadata", "manifest")


def statement(metadata: dict[str, Any], meta_bytes: bytes, manifest_bytes: bytes) -> bytes:
    """The statement a release's signature covers."""
    values = {
        "name": metadata.get("name"),
        "version": metadata.get("version"),
        "release": metadata.get("release"),
        "metadata": f"sha256:{hashlib.sha256(meta_bytes).hexdigest()}",
        "manifest": f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}",
    }
    lines = [HEADER, *(f"{key}: {values[key]}" for key in _FIELDS)]
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Signed:
    """A release whose signature verified: who signed (the key) and what it covers."""

    key: bytes  # the signer's public key blob, canonical (`sshsig.canonical`)
    key_type: str
    fingerprint: str
    covers: dict[str, str]  # the statement's fields


def check(docs: dict[str, bytes], where: str) -> Signed | None:
    """Verify the signature among a release's head documents (metadata, manifest and,
    when signed, statement and signature): None when the release is unsigned, an
    ArtifactError naming `where` when the signature is malformed, does not verify, or
    covers other content than these documents."""
    text, armored = docs.get(STATEMENT), docs.get(SIGNATURE)
    if text is None and armored is None:
        return None
    if text is None or armored is None:
        missing = STATEMENT if text is None else SIGNATURE
        raise ArtifactError(f"{where}: signed release without its {missing}; rebuild it")
    try:
        sig = sshsig.parse(armored)
        sshsig.verify(sig, text, NAMESPACE)
    except sshsig.SignatureError as exc:
        raise ArtifactError(f"{where}: signature refused: {exc}") from None
    covers = _fields(text, where)
    metadata, manifest = docs.get(METADATA, b""), docs.get(MANIFEST, b"")
    for field, data in (("metadata", metadata), ("manifest", manifest)):
        if covers[field] != f"sha256:{hashlib.sha256(data).hexdigest()}":
            raise ArtifactError(
                f"{where}: signature refused: the signed statement is for another {field} "
                "(content changed after signing, or a signature moved from another release)"
            )
    try:
        key = sshsig.canonical(sig.public_key)
    except sshsig.SignatureError as exc:
        raise ArtifactError(f"{where}: signature refused: {exc}") from None
    return Signed(key, sig.key_type, sshsig.fingerprint(key), covers)


def _fields(text: bytes, where: str) -> dict[str, str]:
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        lines = []
    if not lines or lines[0] != HEADER:
        raise ArtifactError(f"{where}: signature refused: {STATEMENT} is not a statement")
    found = {}
    for line in lines[1:]:
        key, sep, value = line.partition(": ")
        if not sep or key not in _FIELDS or key in found:
            raise ArtifactError(f"{where}: signature refused: bad line in {STATEMENT}: {line!r}")
        found[key] = value
    if set(found) != set(_FIELDS):
        raise ArtifactError(f"{where}: signature refused: {STATEMENT} lacks a field")
    return found


def documents_of_tree(root: Path) -> dict[str, bytes]:
    """The head documents of an installed or archived plugin tree, as they were shipped
    (for a copy installed under another name, the metadata and manifest it was signed
    with: `SIGNED_COPY`, which no archive may hold)."""
    docs = {}
    for rel in (METADATA, MANIFEST, STATEMENT, SIGNATURE):
        path = root / rel
        copy = root / SIGNED_COPY / Path(rel).name
        if rel in (METADATA, MANIFEST) and copy.is_file() and not copy.is_symlink():
            path = copy
        if path.is_file() and not path.is_symlink():
            docs[rel] = path.read_bytes()
    return docs
