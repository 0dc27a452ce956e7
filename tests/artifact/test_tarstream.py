"""The fast tar stream writes the bytes `tarfile` would; `pack` stitches its spooled body
behind the head into the archive a one-pass stream writes; `dumps_manifest` agrees with `dumps`."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from toolchain.artifact import manifest, pack, read, spec, tarstream
from toolchain.core.errors import ArtifactError

NAMES = [
    "top/",
    "top/a.txt",
    "top/bin/run",
    "top/" + "d" * 95 + "/x",  # longer than the 100-byte name field: PAX header
    "top/caf\u00e9.txt",  # not ASCII: PAX header
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("kind", "mode", "size", "link"),
    [
        (tarfile.REGTYPE, 0o644, 0, ""),
        (tarfile.REGTYPE, 0o755, 1234567, ""),
        (tarfile.DIRTYPE, 0o755, 0, ""),
        (tarfile.SYMTYPE, 0o777, 0, "a.txt"),
        (tarfile.SYMTYPE, 0o777, 0, "l" * 120),
    ],
)
def test_header_is_the_one_tarfile_writes(
    name: str, kind: bytes, mode: int, size: int, link: str
) -> None:
    info = tarstream.tarinfo(name, kind, mode, size, 1700000000, link)
    expected = info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    assert tarstream.header(name, kind, mode, size, 1700000000, link) == expected


def test_archive_equals_tarfile_output(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))  # several batches for the compressor
    small = tmp_path / "small.txt"
    small.write_text("hello\n")

    ours = io.BytesIO()
    with tarstream.TarGzWriter(ours, compresslevel=1) as tar:
        tar.add_dir("top", 5)
        tar.add_bytes("top/meta.json", b"{}\n", 0o644, 5)
        tar.add_file("top/big.bin", big, big.stat().st_size, 0o644, 5)
        tar.add_file("top/small.txt", small, small.stat().st_size, 0o755, 5)
        tar.add_symlink("top/link", "small.txt", 5)

    theirs = io.BytesIO()
    with tarfile.open(fileobj=theirs, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(tarstream.tarinfo("top", tarfile.DIRTYPE, 0o755, 0, 5, ""))
        tf.addfile(
            tarstream.tarinfo("top/meta.json", tarfile.REGTYPE, 0o644, 3, 5, ""),
            io.BytesIO(b"{}\n"),
        )
        for path, mode in ((big, 0o644), (small, 0o755)):
            info = tarstream.tarinfo(
                f"top/{path.name}", tarfile.REGTYPE, mode, path.stat().st_size, 5, ""
            )
            with path.open("rb") as handle:
                tf.addfile(info, handle)
        tf.addfile(tarstream.tarinfo("top/link", tarfile.SYMTYPE, 0o777, 0, 5, "small.txt"))
    assert gzip.decompress(ours.getvalue()) == theirs.getvalue()
    assert ours.getvalue()[4:8] == b"\0\0\0\0"  # gzip header time is zero


def test_a_file_that_shrank_fails_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"short")
    with pytest.raises(OSError, match="changed while being packed"):
        with tarstream.TarGzWriter(io.BytesIO()) as tar:
            tar.add_file("top/f", path, 100, 0o644, 0)


def test_pack_describes_members_and_manifest_json(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x.sh").write_text("#!/bin/sh\n")
    (src / "d" / "x.sh").chmod(0o700)
    (src / 'caf\u00e9 "q".txt').write_bytes(os.urandom(3 << 20))
    os.symlink("d/x.sh", src / "link")
    rels = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    doc = pack.pack(tmp_path / "a.plugin", "top", [(r, str(src / r)) for r in rels], {}, mtime=7)
    assert "d" in doc["dirs"]
    assert {"path": "link", "target": "d/x.sh"} in doc["symlinks"]
    files = {f["path"]: f for f in doc["files"]}
    assert (files["d/x.sh"]["mode"], files["d/x.sh"]["size"]) == ("755", 10)
    for rel in ("d/x.sh", 'caf\u00e9 "q".txt'):
        assert files[rel]["sha256"] == spec.sha256_file(src / rel)
    assert manifest.dumps_manifest(doc) == spec.dumps(doc)
    empty = manifest.manifest_of([])
    assert manifest.dumps_manifest(empty) == spec.dumps(empty)


def test_pack_refuses_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ArtifactError, match="not a regular file"):
        pack.pack(tmp_path / "a.plugin", "top", [("pipe", str(tmp_path / "pipe"))], {}, mtime=7)


def test_crc32_combine_matches_zlib() -> None:
    a, b = os.urandom(1000), os.urandom(77777)
    assert tarstream.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert tarstream.crc32_combine(zlib.crc32(a), zlib.crc32(b""), 0) == zlib.crc32(a)


def _one_pass(out: Path, src: Path, rels: list[str], meta: dict[str, str], doc: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The same archive written in one pass by the plain stream writer, as a reference."""
    files = {f["path"]: f for f in doc["files"]}
    size = sum(files[r]["size"] for r in rels if r in files)
    with out.open("wb") as raw, tarstream.TarGzWriter(raw, pack.COMPRESSLEVEL) as tar:
        tar.add_dir("top", 7)
        tar.add_dir("top/.release", 7)
        tar.add_bytes("top/.release/metadata.json", spec.dumps(dict(meta, size=size)), 0o644, 7)
        tar.add_bytes("top/.release/manifest.json", manifest.dumps_manifest(doc), 0o644, 7)
        for rel in sorted(rels):
            path = src / rel
            if path.is_symlink():
                tar.add_symlink(f"top/{rel}", os.readlink(path), 7)
            elif path.is_dir():
                tar.add_dir(f"top/{rel}", 7)
            else:
                mode = int(files[rel]["mode"], 8)
                tar.add_file(f"top/{rel}", path, files[rel]["size"], mode, 7)
    return doc


def test_pack_equals_the_one_pass_stream(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "run").write_text("#!/bin/sh\n")
    (src / "bin" / "run").chmod(0o755)
    (src / "big.bin").write_bytes(os.urandom(5 << 20))  # several batches
    for i in range(300):
        (src / f"f{i}.txt").write_text(f"file {i}\n" * i)
    os.symlink("bin/run", src / "link")
    rels = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    meta = {"name": "top"}
    packed = pack.pack(
        tmp_path / "b.plugin", "top", [(r, str(src / r)) for r in reversed(rels)], meta, mtime=7
    )
    written = _one_pass(tmp_path / "a.plugin", src, rels, meta, packed)
    a = gzip.decompress((tmp_path / "a.plugin").read_bytes())
    b = gzip.decompress((tmp_path / "b.plugin").read_bytes())  # checks the combined CRC
    assert a == b and len(b) % tarfile.RECORDSIZE == 0
    assert read.read_head(tmp_path / "b.plugin")[2] == written
    with tarfile.open(tmp_path / "b.plugin", mode="r|gz") as tar:  # one gzip member
        assert [m.name for m in tar][:4] == [
            "top",
            "top/.release",
            "top/.release/metadata.json",
            "top/.release/manifest.json",
        ]
