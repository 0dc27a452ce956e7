"""Signing a release with the developer's OpenSSH key (`$PLUGIN_SIGNING_KEY`).

`ssh-keygen -Y sign -n plugin` signs the release's statement (`artifact.signature`): it
reads OpenSSH private keys (a passphrase is asked on the terminal, as ssh does), and a
public key file whose private half is in ssh-agent. Ed25519 signatures are deterministic,
so a signed build stays byte-identical for the same SOURCE_DATE_EPOCH and key.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from toolchain.artifact import signature, sshsig
from toolchain.core import settings
from toolchain.core.errors import ReleaseError


def signer() -> Callable[[bytes], bytes] | None:
    """The function signing a statement with `$PLUGIN_SIGNING_KEY`; None when it is unset."""
    configured = settings.signing_key()
    if configured is None:
        return None
    key = Path(configured).expanduser()
    where = f"{settings.SIGNING_KEY}={configured}"
    if not key.is_file():
        raise ReleaseError(f"{where}: no such key file; give an OpenSSH key (or unset it)")
    tool = shutil.which("ssh-keygen")
    if tool is None:
        raise ReleaseError(f"{where}: ssh-keygen is not installed (OpenSSH's client tools)")

    def sign(statement: bytes) -> bytes:
        cmd = [tool, "-q", "-Y", "sign", "-n", signature.NAMESPACE, "-f", str(key)]
        try:
            proc = subprocess.run(cmd, input=statement, capture_output=True, check=False)
        except OSError as exc:
            raise ReleaseError(f"{where}: cannot run ssh-keygen: {exc}") from None
        said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
            reason = said[-1] if said else f"exit status {proc.returncode}"
            raise ReleaseError(f"{where}: ssh-keygen cannot sign with it: {reason}")
        try:  # what installers will do with it: a key type they cannot check fails here
            made = sshsig.parse(proc.stdout)
            sshsig.canonical(made.public_key)
            sshsig.verify(made, statement, signature.NAMESPACE)
        except sshsig.SignatureError as exc:
            raise ReleaseError(
                f"{where}: plugins.install cannot verify this key's signatures ({exc}); "
                "sign with an Ed25519, ECDSA or RSA key"
            ) from None
        return proc.stdout

    return sign
