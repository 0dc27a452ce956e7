"""The runtime-wide wheel store: each wheel's files kept once, by the wheel's sha256.

An entry is a wheel unpacked as it lies in a virtualenv (`lib/pythonX.Y/site-packages`,
`bin`, ...), its bytecode compiled in parallel over the machine's cores, every file
read-only, with the RECORD rows a virtualenv needs (`.pyc-record`, and `.lib-record` for a
wheel of library files only, which `localenv.wheels` then installs by linking alone). It
is made in a scratch directory and published whole by one rename, so a crash leaves no
half entry. Virtualenvs get its files as hard links: the second plugin with the same wheel
costs neither the unpacking nor the disk. Nothing writes into a stored file: pip, run
later inside a plugin env, replaces files (a new inode) and never edits them. An entry no
virtualenv links to any more is collected (`collect`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import stat
import sys
import zipfile
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from toolchain.core.errors import VenvError
from toolchain.localenv import bytecode

_COMPLETE = ".complete"
_PYC_RECORD = ".pyc-record"  # RECORD rows of the entry's bytecode (no hash: as pip writes)
_LIB_RECORD = ".lib-record"  # and of a library-only wheel's files, as installed
_OWN = (_COMPLETE, _PYC_RECORD, _LIB_RECORD)  # the store's files in an entry


def record_row(rel: str, data: bytes) -> list[str]:
    """A RECORD row: the path, `sha256=` with its urlsafe base64 digest, the size."""
    digest = urlsafe_b64encode(hashlib.sha256(data).digest()).decode("ascii").rstrip("=")
    return [rel, f"sha256={digest}", str(len(data))]


def schemes(venv: Path, dist: str) -> dict[str, str]:
    """Where each scheme of a wheel goes in the virtualenv at `venv` (as pip lays it out)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = str(venv / "lib" / version / "site-packages")
    return {
        "purelib": site,
        "platlib": site,
        "scripts": str(venv / "bin"),
        "data": str(venv),
        "headers": str(venv / "include" / "site" / version / dist),
    }


def _plain_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo] | None:
    """The members of a wheel that is only library files (no `.data/`), each name a clean
    relative path; None when the wheel needs the full installer."""
    members = []
    for info in archive.infolist():
        parts = info.filename.split("/")
        if info.filename.startswith("/") or ".." in parts or "\\" in info.filename:
            return None
        if parts[0].endswith(".data") or "__pycache__" in parts[:-1]:
            return None
        members.append(info)
    return members


def write_new(path: str, source: IO[bytes], mode: int) -> None:
    """Create `path` (never an existing file) with `mode`, its bytes from `source`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with open(fd, "wb", buffering=0) as out:
        shutil.copyfileobj(source, out, 1 << 20)


def _scratch(entry: Path) -> Path:
    """Where the entry is made before it is published whole (`collect` removes leftovers)."""
    return entry.with_name(f"{entry.name}.{os.getpid()}.tmp")


def _unpack(entry: Path, wheel: Path) -> tuple[Path, list[str] | None]:
    """Unpack the files of `wheel` into the scratch directory of a store entry; return it,
    and the files of a wheel of library files only (None for any other).

    A wheel of library files only is extracted as it is, each file created read-only (its
    RECORD has every file's hash); any other goes through pypa/installer, which maps
    `.data/` to its schemes.
    """
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    scratch = _scratch(entry)
    shutil.rmtree(scratch, ignore_errors=True)
    dist = wheel.name.split("-")[0]
    site = schemes(scratch, dist)["purelib"]
    with zipfile.ZipFile(wheel) as archive:
        members = _plain_members(archive)
        if members is not None:
            made: set[str] = set()
            files = []
            for info in members:
                if info.is_dir():
                    continue
                files.append(info.filename)
                target = f"{site}/{info.filename}"
                parent = os.path.dirname(target)
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                attr = info.external_attr >> 16  # executable as pip sees it
                mode = 0o555 if stat.S_ISREG(attr) and attr & 0o111 else 0o444
                with archive.open(info) as source:
                    write_new(target, source, mode)
            return scratch, files
    destination = SchemeDictionaryDestination(
        schemes(scratch, dist), interpreter="/usr/bin/python3", script_kind="posix"
    )
    with WheelFile.open(wheel) as source:
        install(source, destination, {})
    return scratch, None


def _rows_of_library(site: Path, files: Sequence[str]) -> list[list[str]] | None:
    """RECORD rows of a library-only wheel's files as installed: its RECORD's order and
    hashes (as pip keeps them), hashed here when RECORD has none; None when the wheel has
    not exactly one `.dist-info` directory (pypa/installer then reports it)."""
    dist_infos = {f.split("/")[0] for f in files if f.split("/")[0].endswith(".dist-info")}
    if len(dist_infos) != 1:
        return None
    record = f"{dist_infos.pop()}/RECORD"
    if record not in files:
        return None
    given = {}
    text = (site / record).read_text(encoding="utf-8")
    for row in csv.reader(io.StringIO(text)):
        if len(row) == 3 and row[1].startswith("sha256=") and row[2].isdigit():
            given[row[0]] = row
    present = set(files)
    ordered = [path for path in given if path in present]
    ordered += [path for path in files if path not in given]
    rows = []
    for path in ordered:
        if path == record:
            continue
        rows.append(given.get(path) or record_row(path, (site / path).read_bytes()))
    return rows


def _seal(scratch: Path, entry: Path, wheel: Path, files: Sequence[str] | None) -> None:
    """Record the bytecode's RECORD rows (and, for a library-only wheel, every file's),
    make every file read-only, and publish the entry."""
    site = Path(schemes(scratch, "x")["purelib"])
    compiled = sorted(site.rglob("__pycache__/*.pyc"))
    write_rows(scratch / _PYC_RECORD, [[p.relative_to(site).as_posix(), "", ""] for p in compiled])
    rows = _rows_of_library(site, files) if files is not None else None
    if rows is not None:
        write_rows(scratch / _LIB_RECORD, rows)
        for path in compiled:  # the rest was created read-only
            path.chmod(0o444)
    else:
        for path in scratch.rglob("*"):  # nobody writes into a stored file
            if path.is_file() and not path.is_symlink():
                path.chmod(path.stat().st_mode & ~0o222)
    (scratch / _COMPLETE).write_text(wheel.name, encoding="utf-8")
    os.rename(scratch, entry)


def rows_text(rows: Sequence[Sequence[str]]) -> bytes:
    """RECORD's text of `rows`, as pip and pypa/installer write it."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)  # csv's \r\n, as pip writes RECORD
    return out.getvalue().encode("utf-8")


def write_rows(path: Path, rows: Sequence[Sequence[str]]) -> None:
    path.write_bytes(rows_text(rows))


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


@contextmanager
def _naming(wheel: Path) -> Iterator[None]:
    """Report a failure in the block as one line naming `wheel`."""
    from installer.exceptions import InstallerError

    try:
        yield
    except (OSError, ValueError, KeyError, InstallerError, zipfile.BadZipFile) as exc:
        raise VenvError(f"{wheel.name}: cannot unpack it into the wheel store: {exc}") from None


def fill(
    store: Path, missing: Sequence[tuple[Path, str]], workers: int, uncompiled: set[str]
) -> None:
    """Make the store entries of `missing` wheels: unpack each, compile their bytecode (but
    for the wheels whose digest is in `uncompiled`), then publish each entry.

    Wheels are unpacked by `workers` threads (creating files waits on the filesystem, and
    zlib lets go of the interpreter), and each one's bytecode is compiled by a pool of
    `workers` processes as soon as it is unpacked.
    """
    from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed

    if not missing:
        return
    for _wheel, digest in missing:
        shutil.rmtree(store / digest, ignore_errors=True)
    threads = ThreadPoolExecutor(max_workers=max(1, min(workers, len(missing))))
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    unpacking = {threads.submit(_unpack, store / d, w): (w, d) for w, d in missing}
    jobs: list[Future[None]] = []
    done = []
    try:
        for future in as_completed(unpacking):
            wheel, digest = unpacking[future]
            with _naming(wheel):
                scratch, files = future.result()
            done.append((scratch, store / digest, wheel, files))
            if digest in uncompiled:
                continue
            site = Path(schemes(scratch, "x")["purelib"])
            if files is None:
                sources = sorted(str(p) for p in site.rglob("*.py"))
            else:
                sources = [f"{site}/{f}" for f in files if f.endswith(".py")]
            if pool is None:
                bytecode.compile_serially(sources)
                continue
            step = max(20, len(sources) // (workers * 4))
            jobs += [pool.submit(bytecode.compile_serially, sources[i : i + step])
                     for i in range(0, len(sources), step)]  # fmt: skip
        for job in jobs:
            job.result()
        for scratch, entry, wheel, files in done:
            with _naming(wheel):
                _seal(scratch, entry, wheel, files)
    except BaseException:
        threads.shutdown(wait=True, cancel_futures=True)
        for _wheel, digest in missing:
            shutil.rmtree(_scratch(store / digest), ignore_errors=True)
        raise
    finally:
        threads.shutdown(wait=True)
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def collect(store: Path) -> list[str]:
    """Remove the store entries no virtualenv links to any more; return their names.

    An entry is in use while any of its files has another link than the store's own.
    """
    removed: list[str] = []
    if not store.is_dir():
        return removed
    for entry in sorted(store.iterdir()):
        if entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True)
            continue
        used = any(
            p.lstat().st_nlink > 1
            for p in entry.rglob("*")
            if p.is_file()
            and not p.is_symlink()
            and p.name not in (_COMPLETE, _PYC_RECORD, _LIB_RECORD)
        )
        if not used:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def is_complete(entry: Path) -> bool:
    """Whether the store entry `entry` is published (whole)."""
    return (entry / _COMPLETE).is_file()


def library_rows(entry: Path) -> list[list[str]] | None:
    """RECORD rows of a library-only wheel's files; None for a wheel that needs the full
    installer (or an entry made before these rows were kept)."""
    path = entry / _LIB_RECORD
    return read_rows(path) if path.is_file() else None


def compiled_rows(entry: Path) -> list[list[str]]:
    """RECORD rows of the entry's bytecode, paths relative to site-packages."""
    return read_rows(entry / _PYC_RECORD)
