"""OpenSSH signatures (SSHSIG, the format of `ssh-keygen -Y sign`), verified offline.

The armored signature holds the signer's public key, a namespace, a hash algorithm and
the signature over `"SSHSIG" || namespace || reserved || hash algorithm || H(message)`
(OpenSSH's PROTOCOL.sshsig). Ed25519, ECDSA (nistp256/384/521) and RSA (rsa-sha2-256/512)
keys are verified here with `cryptography`, so an air-gapped host needs no ssh-keygen.
Signing is left to `ssh-keygen -Y sign` (`build.signing`): it reads OpenSSH private keys
and ssh-agent keys, which are the developer's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

MAGIC = b"SSHSIG"
_BEGIN, _END = b"-----BEGIN SSH SIGNATURE-----", b"-----END SSH SIGNATURE-----"
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}
_CURVES = {b"nistp256": "SECP256R1", b"nistp384": "SECP384R1", b"nistp521": "SECP521R1"}


class SignatureError(Exception):
    """A signature that cannot be read or does not verify (the message says which)."""


def _string(data: bytes, offset: int) -> tuple[bytes, int]:
    """An SSH wire `string` at `offset`: (its bytes, the offset after it)."""
    if offset + 4 > len(data):
        raise SignatureError("truncated signature data")
    size = int.from_bytes(data[offset : offset + 4], "big")
    end = offset + 4 + size
    if end > len(data):
        raise SignatureError("truncated signature data")
    return data[offset + 4 : end], end


def _strings(data: bytes, count: int) -> list[bytes]:
    out, offset = [], 0
    for _ in range(count):
        value, offset = _string(data, offset)
        out.append(value)
    if offset != len(data):
        raise SignatureError("trailing bytes after the signature data")
    return out


def _wire(*values: bytes) -> bytes:
    return b"".join(len(v).to_bytes(4, "big") + v for v in values)


@dataclass(frozen=True)
class Signature:
    """A parsed SSHSIG signature."""

    public_key: bytes  # the key blob, as in an OpenSSH public key line (base64-decoded)
    namespace: str
    hash_algorithm: bytes
    signature: bytes  # string(format) || string(bytes)

    @property
    def key_type(self) -> str:
        return _string(self.public_key, 0)[0].decode("ascii", "replace")

    @property
    def fingerprint(self) -> str:
        """`SHA256:...` of the canonical key, as `ssh-keygen -l` prints it."""
        return fingerprint(canonical(self.public_key))


def fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def parse(armored: bytes) -> Signature:
    """Read an armored SSHSIG signature (`-----BEGIN SSH SIGNATURE-----`...)."""
    text = armored.strip()
    if not (text.startswith(_BEGIN) and text.endswith(_END)):
        raise SignatureError("not an SSH signature (no BEGIN/END SSH SIGNATURE lines)")
    try:
        blob = base64.b64decode(b"".join(text[len(_BEGIN) : -len(_END)].split()), validate=True)
    except binascii.Error:
        raise SignatureError("the signature is not valid base64") from None
    if not blob.startswith(MAGIC) or len(blob) < 10:
        raise SignatureError("not an SSH signature (no SSHSIG magic)")
    if int.from_bytes(blob[6:10], "big") != 1:
        raise SignatureError("unsupported SSH signature version")
    key, namespace, _reserved, hash_alg, sig = _strings(blob[10:], 5)
    if hash_alg not in _HASHES:
        raise SignatureError(f"unsupported hash algorithm {hash_alg!r}")
    return Signature(key, namespace.decode("utf-8", "replace"), hash_alg, sig)


def signed_data(namespace: str, hash_algorithm: bytes, message: bytes) -> bytes:
    """The bytes the signer's key signs for `message` (PROTOCOL.sshsig)."""
    digest = _HASHES[hash_algorithm](message).digest()
    return MAGIC + _wire(namespace.encode(), b"", hash_algorithm, digest)


def verify(sig: Signature, message: bytes, namespace: str) -> None:
    """Check that `sig` signs `message` in `namespace` with the key it names."""
    if sig.namespace != namespace:
        raise SignatureError(f"signature namespace is {sig.namespace!r}, not {namespace!r}")
    data = signed_data(namespace, sig.hash_algorithm, message)
    sig_format, raw = _strings(sig.signature, 2)
    from cryptography.exceptions import InvalidSignature

    try:
        _check(sig.public_key, sig_format, raw, data)
    except InvalidSignature:
        raise SignatureError("the signature does not match the signed content") from None
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"unusable key or signature: {exc}") from None


def _check(key_blob: bytes, sig_format: bytes, raw: bytes, data: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    key_type, rest = _string(key_blob, 0)
    if key_type == b"ssh-ed25519" and sig_format == key_type:
        ed25519.Ed25519PublicKey.from_public_bytes(_strings(key_blob[rest:], 1)[0]).verify(
            raw, data
        )
    elif key_type.startswith(b"ecdsa-sha2-") and sig_format == key_type:
        curve_name, point = _strings(key_blob[rest:], 2)
        if curve_name not in _CURVES or key_type != b"ecdsa-sha2-" + curve_name:
            raise SignatureError(f"unsupported ECDSA curve {curve_name!r}")
        curve = getattr(ec, _CURVES[curve_name])()
        public = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        r, s = (int.from_bytes(v, "big") for v in _strings(raw, 2))
        algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}
        public.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm[curve.key_size]))
    elif key_type == b"ssh-rsa" and sig_format in (b"rsa-sha2-256", b"rsa-sha2-512"):
        e, n = (int.from_bytes(v, "big") for v in _strings(key_blob[rest:], 2))
        public_rsa = rsa.RSAPublicNumbers(e, n).public_key()
        digest = hashes.SHA256() if sig_format == b"rsa-sha2-256" else hashes.SHA512()
        public_rsa.verify(raw, data, padding.PKCS1v15(), digest)
    else:
        shown = key_type.decode("ascii", "replace")
        raise SignatureError(f"unsupported key or signature type {shown} / {sig_format!r}")


def canonical(blob: bytes) -> bytes:
    """The key blob as OpenSSH itself writes it, which is what identities are compared by:
    an ECDSA point (compressed or not) or an RSA number (with leading zeros or not) can be
    encoded in more than one way, and the signed data does not cover the key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key_type, rest = _string(blob, 0)
    if key_type == b"ssh-ed25519":
        (key,) = _strings(blob[rest:], 1)
        if len(key) != 32:
            raise SignatureError("an Ed25519 key is 32 bytes")
        return _wire(key_type, key)
    if key_type.startswith(b"ecdsa-sha2-"):
        curve_name, point = _strings(blob[rest:], 2)
        if curve_name not in _CURVES or key_type != b"ecdsa-sha2-" + curve_name:
            raise SignatureError(f"unsupported ECDSA curve {curve_name!r}")
        curve = getattr(ec, _CURVES[curve_name])()
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError as exc:
            raise SignatureError(f"unusable ECDSA key: {exc}") from None
        x962, form = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        return _wire(key_type, curve_name, public.public_bytes(x962, form))
    if key_type == b"ssh-rsa":
        e, n = (int.from_bytes(v, "big") for v in _strings(blob[rest:], 2))
        return _wire(key_type, _mpint(e), _mpint(n))
    raise SignatureError(f"unsupported key type {key_type.decode('ascii', 'replace')}")


def _mpint(value: int) -> bytes:
    """An SSH mpint of a non-negative number: big-endian, a zero byte when the top bit is set."""
    return value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""


def public_key_blob(line: str) -> bytes:
    """The canonical key blob of an OpenSSH public key (`TYPE BASE64 [comment]`);
    ValueError if it is not one."""
    fields = line.split()
    if len(fields) < 2:
        raise ValueError("not an OpenSSH public key (TYPE BASE64)")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise ValueError("the key is not valid base64") from None
    try:
        key_type = _string(blob, 0)[0]
    except SignatureError:
        raise ValueError("the key data is truncated") from None
    if key_type.decode("ascii", "replace") != fields[0]:
        raise ValueError(f"the key data is a {key_type!r} key, not {fields[0]}")
    try:
        return canonical(blob)
    except SignatureError as exc:
        raise ValueError(str(exc)) from None
