"""Whose signed releases this runtime installs, and what it does with the others.

Trust comes from the runtime's `config/allowed_signers` and, for fleets, the provisioning
override directory's `allowed_signers`, both in OpenSSH's allowed_signers format
(`PRINCIPALS [namespaces="plugin"] KEYTYPE BASE64 [comment]`, as `ssh-keygen -Y verify`
reads it). A key is revoked by an `@revoked KEYTYPE BASE64` line in either file or by a
line of `config/revoked_keys` (or the provisioning directory's `revoked_keys`): its
signatures are refused under every policy but `off`.

`$PLUGIN_SIGNATURE_POLICY`: `require` (unsigned or untrusted refused), `warn` (installed
with one WARNING line; the default while no allowed_signers file exists) or `off`. When an
allowed_signers file exists the default is `require`. A signature that does not verify is
refused unless the policy is `off`: it means the content changed after signing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.artifact import signature, sshsig
from toolchain.core import settings
from toolchain.core.errors import ArtifactError, InstallError
from toolchain.core.layout import Runtime, provisioning_dir

log = logging.getLogger(__name__)
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-")


@dataclass
class Trust:
    """The trusted keys (blob -> principals) and revoked keys of a runtime."""

    signers: dict[bytes, str] = field(default_factory=dict)
    revoked: set[bytes] = field(default_factory=set)
    files: list[Path] = field(default_factory=list)


def _places(rt: Runtime) -> list[tuple[Path, Path]]:
    places = [(rt.allowed_signers, rt.revoked_keys)]
    provisioning = provisioning_dir()
    if provisioning is not None:
        places.append((provisioning / "allowed_signers", provisioning / "revoked_keys"))
    return places


def load(rt: Runtime) -> Trust:
    """Read the runtime's trust files; InstallError naming the file and line of a bad one."""
    trust = Trust()
    for signers, revoked in _places(rt):
        if signers.is_file():
            trust.files.append(signers)
            for number, line in _lines(signers):
                _signer_line(trust, line, f"{signers}:{number}")
        if revoked.is_file():
            for number, line in _lines(revoked):
                trust.revoked.add(_blob(line, f"{revoked}:{number}"))
    return trust


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"{path}: cannot read it: {exc}") from None
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def _blob(text: str, where: str) -> bytes:
    try:
        return sshsig.public_key_blob(text)
    except ValueError as exc:
        raise InstallError(f"{where}: {exc}; fix or remove this line") from None


def _words(line: str) -> list[str]:
    """Split at blanks outside double quotes, as OpenSSH splits allowed_signers fields (the
    quotes are kept: an option's value may hold commas and blanks)."""
    words, current, quoted = [], "", False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char in " \t" and not quoted:
            if current:
                words.append(current)
            current = ""
            continue
        current += char
    if quoted:
        raise ValueError("unbalanced quotes")
    return [*words, current] if current else words


def _options(text: str) -> list[tuple[str, str]]:
    """`name[="value"]` options, comma-separated outside quotes."""
    found, current, quoted = [], "", False
    for char in text + ",":
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            name, _sep, value = current.partition("=")
            found.append((name.strip().lower(), value.strip()))
            current = ""
            continue
        if char != '"':
            current += char
    return [(n, v) for n, v in found if n]


def _signer_line(trust: Trust, line: str, where: str) -> None:
    """One line: `PRINCIPALS [OPTIONS] KEYTYPE KEY [comment]`, or our `@revoked TYPE KEY`."""
    try:
        words = _words(line)
    except ValueError:
        raise InstallError(f"{where}: unbalanced quotes; fix or remove this line") from None
    if words and words[0] == "@revoked":
        trust.revoked.add(_blob(" ".join(words[1:3]), where))
        return
    at = 1 if len(words) > 1 and words[1].startswith(_KEY_TYPES) else 2
    if len(words) < at + 2 or not words[at].startswith(_KEY_TYPES):
        raise InstallError(f"{where}: expected PRINCIPALS [OPTIONS] KEYTYPE KEY")
    namespaces = None
    for name, value in _options(words[1]) if at == 2 else []:
        if name == "namespaces":
            namespaces = {n.strip() for n in value.split(",")}
        else:  # cert-authority, valid-after, valid-before: not trusted here
            log.warning("%s: option %r is not supported: this line is ignored", where, name)
            return
    if namespaces is not None and signature.NAMESPACE not in namespaces:
        return  # trusted for something else
    trust.signers[_blob(f"{words[at]} {words[at + 1]}", where)] = words[0].strip('"')


def policy(trust: Trust) -> str:
    """The policy in force: `$PLUGIN_SIGNATURE_POLICY`, else require when trust is set up."""
    return settings.signature_policy("require" if trust.files else "warn")


def describe(docs: dict[str, bytes], where: str, rt: Runtime) -> dict[str, Any]:
    """What `plugins.info` and `plugins.verify` say of a release's signature: its `state`
    (unsigned, invalid, revoked, untrusted or trusted), who signed and what it covers."""
    try:
        signed = signature.check(docs, where)
    except ArtifactError as exc:
        return {"state": "invalid", "problem": str(exc)}
    if signed is None:
        return {"state": "unsigned"}
    trust = load(rt)
    who = trust.signers.get(signed.key)
    state = "revoked" if signed.key in trust.revoked else "trusted" if who else "untrusted"
    return {
        "state": state,
        "principals": who,
        "key": f"{signed.key_type} {signed.fingerprint}",
        "covers": signed.covers,
    }


def enforce(
    docs: dict[str, bytes], where: str, rt: Runtime, warnings: list[str] | None = None
) -> signature.Signed | None:
    """Apply the runtime's policy to a release's head documents (`where` names it);
    InstallError (or ArtifactError for a broken signature) when it is refused. What `warn`
    lets through is logged, or added to `warnings` for the caller to log once it installed."""
    said = warnings.append if warnings is not None else log.warning
    trust = load(rt)
    chosen = policy(trust)
    if chosen == "off":
        return None
    signed = signature.check(docs, where)
    hint = f"{settings.SIGNATURE_POLICY}={chosen}"
    if signed is None:
        if chosen == "require":
            raise InstallError(
                f"{where}: not signed, and {hint}: sign it (make release with "
                f"{settings.SIGNING_KEY}) or install it under {settings.SIGNATURE_POLICY}=warn"
            )
        said(f"{where}: not signed; installing it anyway ({hint})")
        return None
    if signed.key in trust.revoked:
        raise InstallError(f"{where}: signed by a revoked key ({signed.fingerprint})")
    if signed.key not in trust.signers:
        files = ", ".join(map(str, trust.files)) or f"{rt.allowed_signers} (absent)"
        if chosen == "require":
            raise InstallError(
                f"{where}: signed by a key that is not trusted ({signed.key_type} "
                f"{signed.fingerprint}); add it to {files} if you trust it"
            )
        said(f"{where}: signed by an unknown key ({signed.fingerprint}); installing it anyway "
             f"({hint})")  # fmt: skip
    return signed
