"""Untrusted archives: a corpus of malicious and broken `.plugin` files, all refused."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.plugin_factory import build_plugin, metadata, pack
from toolchain.artifact.extract import extract
from toolchain.cli.plugins import check_main, install_main, list_main
from toolchain.core.errors import ArtifactError
from toolchain.core.layout import MANIFEST

TOP = "hello"
Members = list[tuple[tarfile.TarInfo, bytes | None]]
Mutation = Callable[[Members, dict], Members]


def read_members(path: Path) -> tuple[Members, dict]:
    """Every member of a tar artifact with its data, and its manifest."""
    members: Members = []
    manifest: dict = {}
    with tarfile.open(path, "r:gz") as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info) if info.isfile() else None
            data = handle.read() if handle else None
            members.append((info, data))
            if info.name == f"{TOP}/{MANIFEST}":
                manifest = json.loads(data or b"{}")
    return members, manifest


def write_members(path: Path, members: Members, manifest: dict | None) -> Path:
    """Write `members` as a gzip tar, the manifest member replaced by `manifest`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info = copy.copy(info)
            if info.name == f"{TOP}/{MANIFEST}" and manifest is not None:
                data = json.dumps(manifest).encode()
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, **attrs: object):
    """A tar member of any type."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data if data is not None or kind != tarfile.REGTYPE else b""


def file_entry(rel: str, data: bytes) -> dict:
    import hashlib

    return {
        "path": rel,
        "size": len(data),
        "mode": "644",
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def add(extra: Members, files: dict[str, bytes] | None = None, links: dict | None = None):
    """A mutation appending members, and (when given) their manifest entries."""

    def mutate(members: Members, manifest: dict) -> Members:
        manifest["files"] += [file_entry(rel, data) for rel, data in (files or {}).items()]
        manifest["symlinks"] += [{"path": p, "target": t} for p, t in (links or {}).items()]
        return members + extra

    return mutate


def change(rel: str, fn: Callable[[tarfile.TarInfo, bytes | None], tuple]) -> Mutation:
    def mutate(members: Members, manifest: dict) -> Members:
        return [fn(i, d) if i.name == f"{TOP}/{rel}" else (i, d) for i, d in members]

    return mutate


def _setuid(info: tarfile.TarInfo, data: bytes | None) -> tuple:
    info.mode = 0o4755
    return info, data


def _bigger(info: tarfile.TarInfo, data: bytes | None) -> tuple:
    return info, (data or b"") + b"#" * 1000


def _same_size_other_bytes(info: tarfile.TarInfo, data: bytes | None) -> tuple:
    assert data
    return info, data.replace(b"hello", b"HELLO")


def _bomb(members: Members, manifest: dict) -> Members:
    info, data = member(f"{TOP}/docs/bomb.txt", data=b"x")
    info.pax_headers = {"comment": "x" * (16 << 20)}
    manifest["files"].append(file_entry("docs/bomb.txt", b"x"))
    return [*members, (info, data)]


def _drop_manifest(members: Members, manifest: dict) -> Members:
    return [(i, d) for i, d in members if i.name != f"{TOP}/{MANIFEST}"]


def _manifest_last(members: Members, manifest: dict) -> Members:
    head = [(i, d) for i, d in members if i.name == f"{TOP}/{MANIFEST}"]
    return [(i, d) for i, d in members if i.name != f"{TOP}/{MANIFEST}"] + head


def _manifest_lists_more(members: Members, manifest: dict) -> Members:
    manifest["files"].append(file_entry("bin/ghost", b"boo"))
    return members


def _duplicate(members: Members, manifest: dict) -> Members:
    return members + [m for m in members if m[0].name == f"{TOP}/config.ini"]


MUTATIONS: dict[str, Mutation] = {
    "absolute path": add([member("/tmp/evil-absolute", data=b"x")]),
    "dot-dot path": add([member(f"{TOP}/../evil", data=b"x")], {"../evil": b"x"}),
    "escaping symlink": add(
        [member(f"{TOP}/escape", tarfile.SYMTYPE, linkname="../../evil")],
        links={"escape": "../../evil"},
    ),
    "absolute symlink": add(
        [member(f"{TOP}/abs", tarfile.SYMTYPE, linkname="/etc")], links={"abs": "/etc"}
    ),
    "symlink chain escaping": add(
        [
            member(f"{TOP}/here", tarfile.SYMTYPE, linkname="."),
            member(f"{TOP}/hop", tarfile.SYMTYPE, linkname="here"),
            member(f"{TOP}/up", tarfile.SYMTYPE, linkname="hop/.."),
        ],
        links={"here": ".", "hop": "here", "up": "hop/.."},
    ),
    "file under a symlink": add(
        [member(f"{TOP}/docs/command/x", data=b"x")], {"docs/command/x": b"x"}
    ),
    "hardlink": add([member(f"{TOP}/hard", tarfile.LNKTYPE, linkname=f"{TOP}/config.ini")]),
    "character device": add([member(f"{TOP}/null", tarfile.CHRTYPE, devmajor=1, devminor=3)]),
    "fifo": add([member(f"{TOP}/pipe", tarfile.FIFOTYPE)]),
    "setuid file": change("bin/hello", _setuid),
    "duplicate name": _duplicate,
    "member larger than the manifest says": change("crontab", _bigger),
    "content not matching its hash": change("config.ini", _same_size_other_bytes),
    "member not in the manifest": add([member(f"{TOP}/smuggled", data=b"x")]),
    "member outside the top directory": add([member("other/file", data=b"x")]),
    "manifest listing a missing file": _manifest_lists_more,
    "missing manifest": _drop_manifest,
    "manifest after the files": _manifest_last,
    "decompression bomb": _bomb,
    "the installer's record, as a link to config.ini": add(
        [member(f"{TOP}/.release/install.json", tarfile.SYMTYPE, linkname="../config.ini")],
        links={".release/install.json": "../config.ini"},
    ),
    "the installer's record, as a file": add(
        [member(f"{TOP}/.release/install.json", data=b"{}")], {".release/install.json": b"{}"}
    ),
    "the installer's local link": add(
        [member(f"{TOP}/local", tarfile.SYMTYPE, linkname="bin")], links={"local": "bin"}
    ),
    "a link climbing out through the installer's local": add(
        [member(f"{TOP}/v", tarfile.SYMTYPE, linkname="local/..")], links={"v": "local/.."}
    ),
    "a link climbing out through a link of the archive": add(
        [
            member(f"{TOP}/deep", tarfile.SYMTYPE, linkname="bin"),
            member(f"{TOP}/w", tarfile.SYMTYPE, linkname="deep/../config.ini"),
        ],
        links={"deep": "bin", "w": "deep/../config.ini"},
    ),
    "a path 1,800 directories deep": add(
        [member(f"{TOP}/" + "d/" * 1800 + "f", data=b"x")], {"d/" * 1800 + "f": b"x"}
    ),
    "a file under the installer's local": add(
        [member(f"{TOP}/local/x", data=b"x")], {"local/x": b"x"}
    ),
}


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A well-formed artifact of plugin `hello` (no wheels), tar format."""
    return build_plugin(tmp_path_factory.mktemp("honest"), TOP, "1.0")


def _snapshot(root: Path, skip: Path) -> set[str]:
    found = set()
    for directory, dirs, files in os.walk(root):
        if Path(directory) == skip or skip in Path(directory).parents:
            continue
        found.update(os.path.join(directory, name) for name in dirs + files)
    return found - {str(skip)}


def malicious(honest: Path, out: Path, mutation: Mutation) -> Path:
    members, manifest = read_members(honest)
    members = mutation(members, manifest)
    return write_members(out, members, manifest)


def test_honest_artifact_extracts_with_modes_and_links(honest: Path, tmp_path: Path) -> None:
    got = extract(honest, tmp_path / "dest")
    dest = tmp_path / "dest"
    assert got.top == TOP and got.metadata["version"] == "1.0"
    assert os.readlink(dest / "docs" / "command") == "../bin/hello"
    assert stat.S_IMODE((dest / "bin" / "hello").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "config.ini").stat().st_mode) == 0o644
    assert (dest / MANIFEST).is_file()


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_malicious_tar_is_refused_and_nothing_written_outside(
    honest: Path, tmp_path: Path, case: str
) -> None:
    archive = malicious(honest, tmp_path / "inputs" / "bad.plugin", MUTATIONS[case])
    dest = tmp_path / "stage" / "dest"
    dest.parent.mkdir()
    before = _snapshot(tmp_path, dest)
    with pytest.raises(ArtifactError) as info:
        extract(archive, dest)
    assert str(archive) in str(info.value)
    assert _snapshot(tmp_path, dest) == before
    assert not Path("/tmp/evil-absolute").exists()


def test_truncated_and_corrupt_archives(honest: Path, tmp_path: Path) -> None:
    data = honest.read_bytes()
    cases = {
        "truncated": data[: len(data) * 6 // 10],
        "corrupt": data[:200] + bytes(b ^ 0x5A for b in data[200:400]) + data[400:],
        "not an archive": b"#!/bin/sh\necho not a plugin\n",
        "empty": b"",
    }
    for label, content in cases.items():
        path = tmp_path / f"{label}.plugin"
        path.write_bytes(content)
        with pytest.raises(ArtifactError):
            extract(path, tmp_path / f"dest-{label}")


def _zip_from(honest: Path, out: Path, extra: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    members, _manifest = read_members(honest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate name it writes
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in members:
                zinfo = zipfile.ZipInfo(info.name + ("/" if info.isdir() else ""))
                if info.issym():
                    zinfo.external_attr = (stat.S_IFLNK | 0o777) << 16
                    zf.writestr(zinfo, info.linkname)
                elif info.isdir():
                    zinfo.external_attr = (stat.S_IFDIR | 0o755) << 16
                    zf.writestr(zinfo, b"")
                else:
                    zinfo.external_attr = (stat.S_IFREG | info.mode) << 16
                    zf.writestr(zinfo, data or b"")
            for zinfo, data in extra:
                zf.writestr(zinfo, data)
    return out


def _zinfo(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def test_zip_artifact_is_detected_from_content_and_extracted(honest: Path, tmp_path: Path) -> None:
    archive = _zip_from(honest, tmp_path / "named-like-a-tar.tar.gz", [])
    got = extract(archive, tmp_path / "dest")
    assert got.top == TOP
    assert os.readlink(tmp_path / "dest" / "docs" / "command") == "../bin/hello"
    assert os.access(tmp_path / "dest" / "bin" / "hello", os.X_OK)


@pytest.mark.parametrize(
    "extra",
    [
        [(_zinfo(f"{TOP}/../evil", stat.S_IFREG | 0o644), b"x")],
        [(_zinfo(f"{TOP}/link", stat.S_IFLNK | 0o777), b"../../evil")],
        [(_zinfo(f"{TOP}/config.ini", stat.S_IFREG | 0o644), b"[general]\n")],
        [(_zinfo(f"{TOP}/pipe", stat.S_IFIFO | 0o644), b"")],
        [(_zinfo(f"{TOP}/bin/hello2", stat.S_IFREG | 0o4755), b"x")],
    ],
    ids=["dot-dot", "escaping symlink", "duplicate", "fifo", "setuid"],
)
def test_malicious_zip_is_refused(honest: Path, tmp_path: Path, extra: list) -> None:
    archive = _zip_from(honest, tmp_path / "bad.plugin", extra)
    (tmp_path / "stage").mkdir()
    with pytest.raises(ArtifactError):
        extract(archive, tmp_path / "stage" / "dest")
    assert not (tmp_path / "stage" / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_install_refuses_every_bad_archive_and_keeps_the_installed_version(
    honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    assert install_main([str(honest)]) == 0
    before = sorted(p.name for p in (home / "plugins").iterdir())
    capsys.readouterr()
    for case, mutation in sorted(MUTATIONS.items()):
        bad = malicious(honest, tmp_path / "inputs" / f"{case.replace(' ', '-')}.plugin", mutation)
        assert install_main(["--force", str(bad)]) == 1, case
        err = capsys.readouterr().err
        assert err.startswith("ERROR: ") and len(err.strip().splitlines()) == 1, (case, err)
        assert sorted(p.name for p in (home / "plugins").iterdir()) == before, case
    assert check_main([TOP]) == 0
    assert list_main(["--raw"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split("\t")[:3] == [TOP, "1.0", "1"]
    assert len(list((home / "venvs").iterdir())) == 1
    assert not (tmp_path / "evil").exists()


def _zeros_plugin(tmp_path: Path, megabytes: int) -> Path:
    """An honest artifact whose manifest truly lists a file of zeros of that size."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "config.ini").write_text("[general]\nname = zeros\n_version = 1.0\n")
    with (tree / "zeros.bin").open("wb") as handle:
        handle.truncate(megabytes << 20)  # sparse: cheap to write, deflates to almost nothing
    return pack(tree, tmp_path / "zeros-1.0-1.plugin", metadata("zeros", "1.0"))


def test_an_honest_decompression_bomb_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _zeros_plugin(tmp_path, 80)
    assert archive.stat().st_size < (1 << 20)
    with pytest.raises(ArtifactError, match=r"'zeros.bin' is 80 MiB\), over the limit of 100"):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest" / "zeros.bin").exists()
    monkeypatch.setenv("PLUGIN_MAX_COMPRESSION_RATIO", "100000")  # the operator raises it
    extract(archive, tmp_path / "dest2")
    assert (tmp_path / "dest2" / "zeros.bin").stat().st_size == 80 << 20


def test_an_archive_unpacking_over_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _zeros_plugin(tmp_path, 3)
    monkeypatch.setenv("PLUGIN_MAX_UNPACKED_MB", "2")
    with pytest.raises(
        ArtifactError, match=r"over the limit of 2 MiB; raise PLUGIN_MAX_UNPACKED_MB"
    ):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest" / "zeros.bin").exists()
    monkeypatch.setenv("PLUGIN_MAX_UNPACKED_MB", "lots")
    with pytest.raises(ArtifactError, match="PLUGIN_MAX_UNPACKED_MB='lots' is not a number"):
        extract(archive, tmp_path / "dest3")


def _extended_header_bomb(path: Path, kind: bytes, size: int) -> Path:
    """A gzip tar opening with a pax or GNU long-name header that declares `size` bytes."""
    info = tarfile.TarInfo("hello/././@LongLink")
    info.type, info.size = kind, size
    with gzip.open(path, "wb", compresslevel=1) as gz:
        gz.write(info.tobuf(tarfile.USTAR_FORMAT))
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            gz.write(chunk)
        gz.write(bytes(2 * tarfile.BLOCKSIZE))
    return path


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE])
def test_a_huge_extended_header_is_refused_with_flat_memory(tmp_path: Path, kind: bytes) -> None:
    bomb = _extended_header_bomb(tmp_path / "bomb.plugin", kind, 200 << 20)
    assert bomb.stat().st_size < (1 << 20)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from toolchain.artifact import read\n"
        "from toolchain.artifact.extract import extract\n"
        "from toolchain.core.errors import ArtifactError\n"
        "for step in (lambda p: read.read_head(p), lambda p: extract(p, Path(sys.argv[2]))):\n"
        "    try:\n"
        "        step(Path(sys.argv[1]))\n"
        "    except ArtifactError as exc:\n"
        "        print(exc)\n"
        "status = Path('/proc/self/status').read_text()\n"  # this process's own peak
        "print(int(status.split('VmHWM:')[1].split()[0]) // 1024)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(bomb), str(tmp_path / "dest")],
        capture_output=True, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    *errors, peak_mib = proc.stdout.splitlines()
    assert len(errors) == 2 and all("an extended header of 209715200 bytes" in e for e in errors)
    assert int(peak_mib) < 100  # the declared 200 MiB were never read into memory


def test_a_full_disk_or_a_file_size_limit_is_one_error(tmp_path: Path) -> None:
    big = build_plugin(tmp_path, "big", "1.0", files={"data/blob": "x" * (2 << 20)})
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from toolchain.artifact.extract import extract\n"
        "from toolchain.core.errors import ArtifactError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # then writes fail with EFBIG
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "try:\n"
        "    extract(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "except ArtifactError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(big), str(tmp_path / "dest")],
        capture_output=True, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "cannot unpack it:" in proc.stdout and "File too large" in proc.stdout
    assert "install again" in proc.stdout and len(proc.stdout.splitlines()) == 1
