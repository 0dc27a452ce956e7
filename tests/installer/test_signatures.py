"""Signed releases: OpenSSH keys made by ssh-keygen, signatures made by `make release`'s
signer, checked at install under each policy, and by `ssh-keygen -Y verify` alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements, tool_env
from tests.support.plugin_factory import MTIME, build_plugin, metadata, write_tree
from toolchain.artifact import read
from toolchain.artifact.pack import pack
from toolchain.build import freeze, release, signing
from toolchain.cli.plugins import info_main, install_main, list_main, rollback_main
from toolchain.cli.signed import verify_main
from toolchain.core.layout import PluginDir, Runtime

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def _key(directory: Path, name: str, kind: str = "ed25519") -> Path:
    """A new passphrase-less OpenSSH key pair `directory/name` (+ `.pub`)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", key], check=True)
    return key


def _public(key: Path) -> str:
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def _signed(tmp_path: Path, key: Path | None, version: str = "1.0", name: str = "hello") -> Path:
    """A small release of `name`, signed with `key` (unsigned for None)."""
    tree = write_tree(Path(tempfile.mkdtemp(dir=tmp_path)) / name, name, version)
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / f"{name}-{version}.plugin"
    members = [(p.relative_to(tree).as_posix(), str(p)) for p in sorted(tree.rglob("*"))]
    sign = None
    if key is not None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PLUGIN_SIGNING_KEY", str(key))
            sign = signing.signer()
    pack(out, name, members, metadata(name, version), mtime=MTIME, sign=sign)
    return out


def _trust(rt: Runtime, *lines: str) -> None:
    rt.allowed_signers.parent.mkdir(parents=True, exist_ok=True)
    rt.allowed_signers.write_text("\n".join(lines) + "\n")


def _refused(
    capsys: pytest.CaptureFixture[str], file: Path, reason: str, named: str | None = None
) -> None:
    """Installing `file` fails with one line naming it (or `named`) and `reason`."""
    capsys.readouterr()
    assert install_main([str(file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and (named or str(file)) in err[0] and reason in err[0], err
    assert not (Runtime.current().plugins / "hello").exists()


def test_signed_by_a_trusted_key_installs_and_says_who(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    key = _key(tmp_path / "keys", "dev")
    artifact = _signed(tmp_path, key)
    _trust(rt, f'dev@example.com namespaces="plugin" {_public(key)}')
    assert install_main([str(artifact)]) == 0
    capsys.readouterr()
    assert info_main(["hello"]) == 0
    assert "signature: trusted, signed by dev@example.com (ssh-ed25519 SHA256:" in (
        capsys.readouterr().out
    )
    assert verify_main([str(artifact)]) == 0
    out = capsys.readouterr().out
    assert "trusted, signed by dev@example.com" in out and "manifest: sha256:" in out
    assert "files: 6 match the signed manifest" in out
    # A rollback restores only what the same trust still accepts.
    assert install_main(["--upgrade", str(_signed(tmp_path, key, "2.0"))]) == 0
    _trust(rt, f"@revoked {_public(key)}")
    assert rollback_main(["hello"]) == 1
    assert "signed by a revoked key" in capsys.readouterr().err


def test_ssh_keygen_alone_verifies_what_readme_says(tmp_path: Path) -> None:
    key = _key(tmp_path / "keys", "dev")
    artifact = _signed(tmp_path, key)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'dev@example.com namespaces="plugin" {_public(key)}\n')
    out = tmp_path / "x"
    out.mkdir()
    with tarfile.open(artifact) as tar:  # README: tar -xzf FILE hello/.release
        tar.extractall(out, members=[m for m in tar if "/.release/" in m.name + "/"])
    head = out / "hello" / ".release"
    revoked = tmp_path / "revoked_keys"
    revoked.write_text(_public(_key(tmp_path / "keys", "old")) + "\n")

    def verify() -> subprocess.CompletedProcess[str]:
        with (head / "statement").open("rb") as statement:
            return subprocess.run(
                ["ssh-keygen", "-Y", "verify", "-f", signers, "-I", "dev@example.com", "-n",
                 "plugin", "-r", revoked, "-s", head / "statement.sig"],
                stdin=statement, capture_output=True, text=True,
            )  # fmt: skip

    done = verify()
    assert done.returncode == 0, done.stderr
    assert 'Good "plugin" signature for dev@example.com' in done.stdout
    revoked.write_text(_public(key) + "\n")  # the same file revokes for both tools
    assert verify().returncode != 0
    lines = dict(line.split(": ", 1) for line in (head / "statement").read_text().splitlines()[1:])
    for doc in ("metadata", "manifest"):
        digest = subprocess.run(["sha256sum", head / f"{doc}.json"], capture_output=True,
                                text=True, check=True).stdout.split()[0]  # fmt: skip
        assert lines[doc] == f"sha256:{digest}"


def test_each_untrusted_release_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    dev, stranger = _key(tmp_path / "keys", "dev"), _key(tmp_path / "keys", "stranger")
    ecdsa = _key(tmp_path / "keys", "ops", "ecdsa")
    _trust(rt, f"dev@example.com {_public(dev)}", f"ops@example.com {_public(ecdsa)}")
    # require is the default once an allowed_signers file exists
    _refused(capsys, _signed(tmp_path, None), "not signed")
    _refused(capsys, _signed(tmp_path, stranger), "signed by a key that is not trusted")
    # tampered: a file changed, the manifest and statement recomputed, the old signature
    good = _signed(tmp_path, dev)
    tampered = _tamper(tmp_path, good)
    _refused(capsys, tampered, "signature refused: the signature does not match the signed")
    # a signature moved from another release of the same signer
    moved = _moved(tmp_path, _signed(tmp_path, dev, "9.0"), good)
    _refused(capsys, moved, "signature refused: the signed statement is for another")
    # revoked: by an @revoked line, or by the revocation list
    _trust(rt, f"dev@example.com {_public(dev)}", f"@revoked {_public(dev)}")
    _refused(capsys, good, "signed by a revoked key")
    _trust(rt, f"dev@example.com {_public(dev)}")
    rt.revoked_keys.write_text(_public(dev) + " dev\n")
    _refused(capsys, good, "signed by a revoked key")
    rt.revoked_keys.unlink()
    _trust(rt, f"ops@example.com {_public(ecdsa)}")
    # ECDSA keys verify too; a key trusted for another namespace only is not trusted here
    assert install_main([str(_signed(tmp_path, ecdsa, name="hello"))]) == 0
    _trust(rt, f'dev@example.com namespaces="git" {_public(dev)}')
    capsys.readouterr()
    assert install_main(["--upgrade", str(_signed(tmp_path, dev, "3.0"))]) == 1
    assert "not trusted" in capsys.readouterr().err


def _tamper(tmp_path: Path, signed: Path) -> Path:
    """`signed` with bin/hello changed and its manifest recomputed, the signature kept."""
    tree = tmp_path / "tampered-tree"
    with tarfile.open(signed) as tar:
        tar.extractall(tree)
    head = tree / "hello" / ".release"
    statement, sig = (head / "statement").read_bytes(), (head / "statement.sig").read_bytes()
    (tree / "hello" / "bin" / "hello").write_text("#!/bin/sh\necho owned\n")
    for rel in ("statement", "statement.sig", "metadata.json", "manifest.json"):
        (head / rel).unlink()
    head.rmdir()
    out = tmp_path / "tampered.plugin"
    members = [(p.relative_to(tree / "hello").as_posix(), str(p))
               for p in sorted((tree / "hello").rglob("*"))]  # fmt: skip
    pack(out, "hello", members, metadata("hello", "1.0"), mtime=MTIME,
         sign=lambda _statement: sig)  # fmt: skip
    assert read.read_documents(out)[1][".release/statement"] != statement
    return out


def _moved(tmp_path: Path, donor: Path, target: Path) -> Path:
    """`target` carrying the statement and signature of `donor`."""
    docs = read.read_documents(donor)[1]
    tree = tmp_path / "moved-tree"
    with tarfile.open(target) as tar:
        tar.extractall(tree)
    root = tree / "hello"
    (root / ".release" / "statement").write_bytes(docs[".release/statement"])
    (root / ".release" / "statement.sig").write_bytes(docs[".release/statement.sig"])
    out = tmp_path / "moved.plugin"
    with tarfile.open(out, "w:gz") as tar:  # same members, the head's order kept
        with tarfile.open(target) as original:
            for member in original:
                tar.add(tree / member.name, arcname=member.name, recursive=False)
    return out


def test_unsigned_installs_with_one_warning_while_no_trust_is_set_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = subprocess.run(["plugins.install", _signed(tmp_path, None)], env=tool_env(),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "not signed; installing it anyway" in warnings[0]
    assert list_main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "hello"


def test_require_refuses_unsigned_even_without_trust_and_off_checks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGIN_SIGNATURE_POLICY", "require")
    _refused(capsys, _signed(tmp_path, None), "not signed")
    monkeypatch.setenv("PLUGIN_SIGNATURE_POLICY", "off")
    assert install_main([str(_signed(tmp_path, None))]) == 0
    monkeypatch.setenv("PLUGIN_SIGNATURE_POLICY", "sometimes")
    capsys.readouterr()
    assert install_main(["--force", str(_signed(tmp_path, None))]) != 0
    assert "PLUGIN_SIGNATURE_POLICY='sometimes'" in capsys.readouterr().err


def test_a_bad_allowed_signers_line_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    _trust(rt, "# ops", "dev@example.com ssh-ed25519 not-base64!")
    artifact = build_plugin(tmp_path, "hello", "1.0")
    _refused(capsys, artifact, "not valid base64; fix or remove", f"{rt.allowed_signers}:2:")


def test_a_signed_release_build_is_byte_identical(
    tmp_path: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = render_default(tmp_path / "src")
    set_requirements(root, wheels, "beta")
    plugin = PluginDir(root)
    freeze.freeze(plugin)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setenv("PLUGIN_SIGNING_KEY", str(_key(tmp_path / "keys", "dev")))
    first = release.release(plugin, tmp_path / "one.plugin")
    second = release.release(plugin, tmp_path / "two.plugin")
    assert first.read_bytes() == second.read_bytes()
    assert ".release/statement.sig" in read.read_documents(first)[1]
    monkeypatch.setenv("PLUGIN_SIGNING_KEY", str(tmp_path / "nokey"))
    with pytest.raises(Exception, match=r"PLUGIN_SIGNING_KEY=.*nokey: no such key file"):
        release.release(plugin, tmp_path / "three.plugin")


def test_a_fleet_trusts_the_provisioning_directory_s_signers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = tmp_path / "provisioning"
    fleet.mkdir()
    key = _key(tmp_path / "keys", "release")
    (fleet / "allowed_signers").write_text(f"ci@fleet {_public(key)}\n")
    monkeypatch.setenv("PLUGIN_PROVISIONING_DIR", str(fleet))
    assert install_main([str(_signed(tmp_path, key))]) == 0  # require: a trust file exists
    unsigned = _signed(tmp_path, None, "2.0")
    capsys.readouterr()
    assert install_main(["--upgrade", str(unsigned)]) == 1
    assert "not signed" in capsys.readouterr().err
    (fleet / "revoked_keys").write_text(_public(key) + "\n")
    assert install_main(["--upgrade", str(_signed(tmp_path, key, "3.0"))]) == 1
    assert "revoked" in capsys.readouterr().err


def _reencoded(signed: Path, out: Path) -> Path:
    """`signed` (an ECDSA signature) with the signer's key written as a compressed point:
    the same key, other bytes; the signed data does not cover the key."""
    import base64
    import io

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from toolchain.artifact import sshsig

    docs = read.read_documents(signed)[1]
    sig = sshsig.parse(docs[".release/statement.sig"])
    key_type, rest = sshsig._string(sig.public_key, 0)
    curve, point = sshsig._strings(sig.public_key[rest:], 2)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    form = serialization.PublicFormat.CompressedPoint
    key = sshsig._wire(key_type, curve, public.public_bytes(serialization.Encoding.X962, form))
    blob = (
        sshsig.MAGIC
        + (1).to_bytes(4, "big")
        + sshsig._wire(key, b"plugin", b"", sig.hash_algorithm, sig.signature)
    )
    armored = b"-----BEGIN SSH SIGNATURE-----\n" + base64.encodebytes(blob)
    armored += b"-----END SSH SIGNATURE-----\n"
    with tarfile.open(signed) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("/.release/statement.sig"):
                data = armored
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_a_revoked_key_re_encoded_in_the_signature_is_still_revoked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = Runtime.current()
    ops = _key(tmp_path / "keys", "ops", "ecdsa")
    disguised = _reencoded(_signed(tmp_path, ops), tmp_path / "disguised.plugin")
    _trust(rt, f"@revoked {_public(ops)}")
    monkeypatch.setenv("PLUGIN_SIGNATURE_POLICY", "warn")
    _refused(capsys, disguised, "signed by a revoked key")


def test_verify_refuses_what_the_signature_does_not_cover_and_odd_signer_lines_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    rt = Runtime.current()
    key = _key(tmp_path / "keys", "dev")
    good = _signed(tmp_path, key)
    # OpenSSH's syntax: a comment with an apostrophe, several namespaces in quotes
    _trust(rt, f'dev@example.com namespaces="git,plugin" {_public(key)} dev\'s laptop')
    assert verify_main([str(good)]) == 0
    extra = tmp_path / "extra.plugin"
    with tarfile.open(good) as src, tarfile.open(extra, "w:gz") as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        evil = tarfile.TarInfo("hello/bin/evil")
        evil.size, evil.mode = 3, 0o755
        dst.addfile(evil, io.BytesIO(b"hi\n"))
    capsys.readouterr()
    assert verify_main([str(extra)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'bin/evil' is not in the manifest" in err[0]


def test_a_signed_release_installed_under_another_name_stays_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    key = _key(tmp_path / "keys", "dev")
    _trust(rt, f"dev@example.com {_public(key)}")
    assert install_main(["--new-name", "hello2", str(_signed(tmp_path, key))]) == 0
    assert (
        install_main(["--upgrade", "--new-name", "hello2", str(_signed(tmp_path, key, "2.0"))]) == 0
    )
    capsys.readouterr()
    assert info_main(["hello2"]) == 0
    assert "signature: trusted, signed by dev@example.com" in capsys.readouterr().out
    assert rollback_main(["hello2"]) == 0
    from toolchain.cli.plugins import check_main

    assert check_main(["hello2"]) == 0
