"""A reproducible gzip-compressed tar stream, written fast and in bounded memory.

The members are the ones `tarfile` would write in PAX format (same header bytes, same
end-of-archive padding), but most headers are built directly instead of through
`TarInfo.tobuf`, tar blocks are batched into large writes, and deflate runs in a second
thread: zlib releases the GIL, so reading and hashing files overlaps with compression,
as in `tar | gzip`. Memory stays bounded by a few batches whatever the archive size.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import tarfile
import threading
import zlib
from types import TracebackType
from typing import BinaryIO

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_BATCH = 1 << 20  # bytes handed to the compressor at once
_QUEUED = 8  # batches waiting for the compressor, at most
_READ = 1 << 20
_NUL_BLOCK = bytes(BLOCK)
# devmajor and devminor of a non-device member: zeros or empty, depending on the Python.
_DEVICE_FIELDS = tarfile.TarInfo("x").tobuf(tarfile.PAX_FORMAT)[329:345]


# After the link name: magic, user and group names, device numbers, prefix, padding.
_REST = (tarfile.POSIX_MAGIC + bytes(64) + _DEVICE_FIELDS).ljust(BLOCK - 257, b"\0")
_REST_SUM = sum(_REST) + sum(b"        ")  # with the checksum field counted as spaces


def _direct_header(name: str, kind: bytes, mode: int, size: int, mtime: int, link: str) -> bytes:
    """A plain ustar header (root-owned, no names) for ASCII names that fit their fields."""
    raw_name = name.encode("ascii")
    raw_link = link.encode("ascii")
    if len(raw_name) > 100 or len(raw_link) > 100 or size >= 8**11 or mtime >= 8**11:
        raise ValueError("needs a PAX header")
    # name, mode, uid, gid, size, mtime | checksum | type, link name, _REST
    front = raw_name.ljust(100, b"\0") + b"%07o\x000000000\x000000000\x00%011o\x00%011o\x00" % (
        mode & 0o7777,
        size,
        mtime,
    )
    back = kind + raw_link.ljust(100, b"\0")
    checksum = sum(front) + sum(back) + _REST_SUM
    return b"%s%06o\0 %s%s" % (front, checksum, back, _REST)


def tarinfo(name: str, kind: bytes, mode: int, size: int, mtime: int, link: str) -> tarfile.TarInfo:
    """The `TarInfo` of a member owned by root with no user or group name."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = link
    return info


def _tarfile_header(name: str, kind: bytes, mode: int, size: int, mtime: int, link: str) -> bytes:
    info = tarinfo(name, kind, mode, size, mtime, link)
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _same_as_tarfile() -> bool:
    """Whether the direct headers are byte-identical to this Python's `tarfile` ones."""
    samples = [
        ("top/", tarfile.DIRTYPE, 0o755, 0, 1700000000, ""),
        ("top/a/file.txt", tarfile.REGTYPE, 0o644, 12345, 1700000000, ""),
        ("top/bin/run", tarfile.REGTYPE, 0o755, 0, 0, ""),
        ("top/link", tarfile.SYMTYPE, 0o777, 0, 1700000000, "a/file.txt"),
    ]
    return all(_direct_header(*s) == _tarfile_header(*s) for s in samples)


_DIRECT = _same_as_tarfile()  # else this Python's tarfile writes other bytes: always ask it


def header(
    name: str, kind: bytes, mode: int, size: int = 0, mtime: int = 0, link: str = ""
) -> bytes:
    """The PAX-format header block(s) `tarfile` writes for such a member."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if _DIRECT:
        try:
            return _direct_header(name, kind, mode, size, mtime, link)
        except (UnicodeEncodeError, ValueError):
            pass
    return _tarfile_header(name, kind, mode, size, mtime, link)


# CRC-32 of a concatenation from the CRCs of its parts (zlib's crc32_combine, which the
# zlib module does not expose): the body of an archive is deflated before its head.
_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x2n_table() -> list[int]:
    table, p = [], 1 << 30  # x^1
    for _ in range(32):
        table.append(p)
        p = _multmodp(p, p)
    return table


_X2N = _x2n_table()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of `a + b` from `crc32(a)`, `crc32(b)` and `len(b)`."""
    p, k = 1 << 31, 3  # x^(8 * len2) mod P
    while len2:
        if len2 & 1:
            p = _multmodp(_X2N[k & 31], p)
        len2 >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


class _Deflater(threading.Thread):
    """Raw-deflates the batches it is handed, in order, into `sink`; keeps their CRC-32.

    `final`: the stream ends the deflate data; else it ends byte-aligned (sync flush)
    so that another raw deflate stream can follow it.
    """

    def __init__(self, sink: BinaryIO, compresslevel: int, final: bool) -> None:
        super().__init__(name="tar-deflate", daemon=True)
        self.batches: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self.error: BaseException | None = None
        self.crc = 0
        self._sink = sink
        self._final = final
        self._deflate = zlib.compressobj(compresslevel, zlib.DEFLATED, -zlib.MAX_WBITS)

    def run(self) -> None:
        try:
            while (batch := self.batches.get()) is not None:
                if self.error is None:
                    self.crc = zlib.crc32(batch, self.crc)
                    self._sink.write(self._deflate.compress(batch))
            if self.error is None:
                self._sink.write(
                    self._deflate.flush(zlib.Z_FINISH if self._final else zlib.Z_SYNC_FLUSH)
                )
        except BaseException as exc:  # reported by the writer's thread
            self.error = exc
            while self.batches.get() is not None:  # let the producer finish
                pass


class TarWriter:
    """Writes tar members as raw deflate data into `sink`, deflated in a second thread.

    One part of a gzip file: `gzip_header`, then the parts (the last one `final`, the
    only one to end the archive with `end_archive`), then `gzip_trailer`.
    """

    def __init__(self, sink: BinaryIO, compresslevel: int = 6, *, final: bool = True) -> None:
        self._buffer = bytearray()
        self.size = 0  # uncompressed bytes handed to the deflater
        self._worker = _Deflater(sink, compresslevel, final)
        self._worker.start()

    @property
    def crc(self) -> int:
        """CRC-32 of the uncompressed part (once closed)."""
        return self._worker.crc

    def _push(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        if len(self._buffer) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self.size += len(self._buffer)
            self._put(bytes(self._buffer))
            self._buffer.clear()

    def _put(self, item: bytes | None) -> None:
        if self._worker.error is not None:
            raise self._worker.error
        self._worker.batches.put(item)

    def add_dir(self, name: str, mtime: int) -> None:
        """A directory member (mode 755)."""
        self._push(header(name, tarfile.DIRTYPE, 0o755, 0, mtime))

    def add_symlink(self, name: str, target: str, mtime: int) -> None:
        """A symbolic link member."""
        self._push(header(name, tarfile.SYMTYPE, 0o777, 0, mtime, target))

    def add_bytes(self, name: str, data: bytes, mode: int, mtime: int) -> None:
        """A regular file member holding `data`."""
        self._push(header(name, tarfile.REGTYPE, mode, len(data), mtime))
        self._push(data)
        self._pad(len(data))

    def add_fd(self, name: str, fd: int, size: int, mode: int, mtime: int) -> str:
        """A regular file member of the next `size` bytes of `fd`; return their sha256."""
        self._push(header(name, tarfile.REGTYPE, mode, size, mtime))
        digest = hashlib.sha256()
        left = size
        while left:
            chunk = os.read(fd, min(left, _READ))
            if not chunk:
                raise OSError(f"{name}: changed while being packed")
            digest.update(chunk)
            self._push(chunk)
            left -= len(chunk)
        self._pad(size)
        return digest.hexdigest()

    def add_file(
        self, name: str, source: str | os.PathLike[str], size: int, mode: int, mtime: int
    ) -> str:
        """A regular file member copied from `source`, which must still be `size` bytes long."""
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            return self.add_fd(name, fd, size, mode, mtime)
        finally:
            os.close(fd)

    def _pad(self, size: int) -> None:
        remainder = size % BLOCK
        if remainder:
            self._push(_NUL_BLOCK[remainder:])

    def end_archive(self, offset: int = 0) -> None:
        """Two zero blocks, padded to a whole record counting `offset` bytes before this part."""
        self._push(_NUL_BLOCK * 2)
        total = offset + self.size + len(self._buffer)
        if total % RECORD:
            self._push(bytes(RECORD - total % RECORD))

    def close(self) -> None:
        """Deflate what is left and wait for the deflater."""
        self._flush()
        self._put(None)
        self._worker.join()
        if self._worker.error is not None:
            raise self._worker.error

    def abort(self) -> None:
        """Stop the deflater without finishing (the output is discarded)."""
        self._buffer.clear()
        self._worker.error = self._worker.error or RuntimeError("aborted")
        self._worker.batches.put(None)
        self._worker.join()

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def gzip_header(compresslevel: int) -> bytes:
    """The gzip header `gzip.GzipFile` writes with no file name and time 0."""
    xfl = b"\002" if compresslevel == 9 else b"\004" if compresslevel == 1 else b"\000"
    return b"\037\213\010\000" + bytes(4) + xfl + b"\377"


def gzip_trailer(crc: int, size: int) -> bytes:
    """CRC-32 and length (mod 2**32) of all the uncompressed data."""
    return struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


class TarGzWriter(TarWriter):
    """A whole `.tar.gz` in one stream: gzip header, members, end of archive, trailer."""

    def __init__(self, raw: BinaryIO, compresslevel: int = 6) -> None:
        raw.write(gzip_header(compresslevel))
        self._raw = raw
        super().__init__(raw, compresslevel, final=True)

    def close(self) -> None:
        """End the archive and the gzip stream."""
        self.end_archive()
        super().close()
        self._raw.write(gzip_trailer(self.crc, self.size))
