"""The fast tar stream writes the bytes `tarfile` would, and `scan`/`dumps_manifest` agree."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from toolchain import artifact, tarstream
from toolchain.errors import ArtifactError

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


def test_scan_hashes_and_manifest_json(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.sh").write_text("#!/bin/sh\n")
    (tmp_path / "d" / "x.sh").chmod(0o700)
    (tmp_path / 'caf\u00e9 "q".txt').write_bytes(os.urandom(3 << 20))
    os.symlink("d/x.sh", tmp_path / "link")
    rels = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    entries = {e.path: e for e in artifact.scan(tmp_path, rels)}
    assert entries["d"].kind == "dir"
    assert entries["link"].kind == "symlink" and entries["link"].target == "d/x.sh"
    script = entries["d/x.sh"]
    assert (script.kind, script.mode, script.size) == ("file", 0o755, 10)
    for e in entries.values():
        if e.kind == "file":
            assert e.sha256 == artifact.sha256_file(tmp_path / e.path)
    manifest = artifact.manifest_of(entries.values())
    assert artifact.dumps_manifest(manifest) == artifact.dumps(manifest)
    empty = artifact.manifest_of([])
    assert artifact.dumps_manifest(empty) == artifact.dumps(empty)


def test_scan_refuses_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ArtifactError, match="not a regular file"):
        artifact.scan(tmp_path, ["pipe"])


def test_crc32_combine_matches_zlib() -> None:
    a, b = os.urandom(1000), os.urandom(77777)
    assert tarstream.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert tarstream.crc32_combine(zlib.crc32(a), zlib.crc32(b""), 0) == zlib.crc32(a)


def test_pack_is_scan_then_write_in_one_read(tmp_path: Path) -> None:
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
    written = artifact.write(tmp_path / "a.plugin", "top", artifact.scan(src, rels), meta, mtime=7)
    packed = artifact.pack(
        tmp_path / "b.plugin", "top", [(r, str(src / r)) for r in reversed(rels)], meta, mtime=7
    )
    assert packed == written
    a = gzip.decompress((tmp_path / "a.plugin").read_bytes())
    b = gzip.decompress((tmp_path / "b.plugin").read_bytes())  # checks the combined CRC
    assert a == b and len(b) % tarfile.RECORDSIZE == 0
    assert artifact.read_head(tmp_path / "b.plugin")[2] == written
    with tarfile.open(tmp_path / "b.plugin", mode="r|gz") as tar:  # one gzip member
        assert [m.name for m in tar][:4] == [
            "top",
            "top/.release",
            "top/.release/metadata.json",
            "top/.release/manifest.json",
        ]
