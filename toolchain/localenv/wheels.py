"""Installing an artifact's wheelhouse straight into a virtualenv: no pip, no resolver.

At install time there is nothing to resolve and nothing to download: every pin is exact,
its wheel is in the wheelhouse and its hash is in `requirements3.txt`. So each wheel is
checked against its pinned hashes and installed with pypa/installer, the way pip lays it
out: files by scheme, entry-point scripts for this virtualenv's python, RECORD (bytecode
included, with hashes), INSTALLER (`pip`) and REQUESTED.

A runtime-wide store keeps each wheel's library files once, by the wheel's sha256, with
their bytecode compiled in parallel over the machine's cores; a virtualenv gets them as
hard links (copies where the filesystem refuses), so the second plugin with the same
wheel costs neither the unpacking nor the disk. Nothing writes into a stored file: pip,
run later inside a plugin env, replaces files (a new inode) and never edits them. An
entry no virtualenv links to any more is collected (`collect`).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import shutil
import sys
import zipfile
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from toolchain.core import pins as frozen
from toolchain.core.errors import VenvError
from toolchain.core.pins import Pin
from toolchain.localenv import bytecode

INSTALLER_NAME = b"pip\n"  # what pip writes: `pip list` and `pip uninstall` treat it as theirs
_LIB_SCHEMES = ("purelib", "platlib")
_COMPLETE = ".complete"
_PYC_RECORD = ".pyc-record"  # RECORD rows (path, hash, size) of the entry's bytecode


def read_pins(requirements: Path) -> list[Pin]:
    """The pins of a frozen, hashed requirements file; VenvError on anything else."""
    try:
        return frozen.parse(requirements.read_text(encoding="utf-8"))
    except frozen.PinError as exc:
        raise VenvError(f"{requirements}: {exc}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _b64(digest: bytes) -> str:
    return urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def wheels_for(pins: Sequence[Pin], wheelhouse: Sequence[Path]) -> list[tuple[Path, str]]:
    """(wheel, sha256) of each pin, from the wheel directories, its hash checked."""
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    found: dict[tuple[str, str], list[Path]] = {}
    for directory in wheelhouse:
        for wheel in sorted(directory.glob("*.whl")):
            try:
                name, version, _build, _tags = parse_wheel_filename(wheel.name)
            except InvalidWheelFilename:
                continue
            found.setdefault((canonicalize_name(name), str(version)), []).append(wheel)
    chosen = []
    for pin in pins:
        from packaging.version import Version

        candidates = found.get((pin.name, str(Version(pin.version))), [])
        match = [(w, h) for w in candidates if f"sha256:{(h := _sha256(w))}" in pin.hashes]
        if not match:
            what = "no wheel" if not candidates else "no wheel with a pinned hash"
            raise VenvError(
                f"{pin.name}=={pin.version}: {what} in {', '.join(map(str, wheelhouse))}"
            )
        chosen.append(match[0])
    return chosen


def _schemes(venv: Path, dist: str) -> dict[str, str]:
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


def _unpack(entry: Path, wheel: Path) -> Path:
    """Unpack the files of `wheel` into the scratch directory of a store entry; return it.

    A wheel of library files only is extracted as it is (its RECORD has every file's
    hash); any other goes through pypa/installer, which maps `.data/` to its schemes.
    """
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    scratch = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    dist = wheel.name.split("-")[0]
    site = Path(_schemes(scratch, dist)["purelib"])
    with zipfile.ZipFile(wheel) as archive:
        members = _plain_members(archive)
        if members is not None:
            for info in members:
                if info.is_dir():
                    continue
                target = site / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                mode = info.external_attr >> 16
                if mode & 0o111:
                    target.chmod(0o755)
            return scratch
    destination = SchemeDictionaryDestination(
        _schemes(scratch, dist), interpreter="/usr/bin/python3", script_kind="posix"
    )
    with WheelFile.open(wheel) as source:
        install(source, destination, {})
    return scratch


def _seal(scratch: Path, entry: Path, wheel: Path) -> None:
    """Record the bytecode's hashes, make every file read-only, and publish the entry."""
    site = Path(_schemes(scratch, "x")["purelib"])
    rows = _record_of(site, iter(sorted(site.rglob("__pycache__/*.pyc"))))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    (scratch / _PYC_RECORD).write_text(out.getvalue(), encoding="utf-8")
    for path in scratch.rglob("*"):  # nobody writes into a stored file
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)
    (scratch / _COMPLETE).write_text(wheel.name, encoding="utf-8")
    os.rename(scratch, entry)


def _fill(store: Path, missing: Sequence[tuple[Path, str]], workers: int, plain: set[str]) -> None:
    """Make the store entries of `missing` wheels: unpack each, compile their bytecode (but
    for the wheels whose digest is in `plain`), then publish each entry.

    The bytecode of a wheel is compiled by a pool of `workers` processes while the next
    wheels are unpacked: unpacking waits on the disk, compiling on the processors.
    """
    from concurrent.futures import Future, ProcessPoolExecutor

    scratches = []
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 and missing else None
    jobs: list[Future[None]] = []
    try:
        for wheel, digest in missing:
            entry = store / digest
            shutil.rmtree(entry, ignore_errors=True)
            scratch = _unpack(entry, wheel)
            scratches.append((scratch, entry, wheel))
            if digest in plain:
                continue
            site = Path(_schemes(scratch, "x")["purelib"])
            sources = sorted(str(p) for p in site.rglob("*.py"))
            if pool is None or len(sources) < 20:
                bytecode.compile_serially(sources)
                continue
            step = max(20, len(sources) // (workers * 4))
            jobs += [pool.submit(bytecode.compile_serially, sources[i : i + step])
                     for i in range(0, len(sources), step)]  # fmt: skip
        for job in jobs:
            job.result()
        for scratch, entry, wheel in scratches:
            _seal(scratch, entry, wheel)
    except BaseException:
        for scratch, _entry, _wheel in scratches:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _link(source: Path, target: Path) -> None:
    """Hard-link `source` to `target`; copy when the filesystem refuses a link."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, target)
        target.chmod(target.stat().st_mode | 0o200)


def _record_of(site: Path, paths: Iterator[Path]) -> list[list[str]]:
    rows = []
    for path in paths:
        data = path.read_bytes()
        rel = path.relative_to(site).as_posix()
        rows.append([rel, f"sha256={_b64(hashlib.sha256(data).digest())}", str(len(data))])
    return rows


def _install_one(venv: Path, wheel: Path, entry: Path) -> None:
    """Install `wheel` into `venv`: library files linked from the store `entry`, scripts and
    the installation's metadata written for this virtualenv, RECORD as pip writes it."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.records import Hash, RecordEntry
    from installer.sources import WheelFile
    from installer.utils import Scheme

    class Linking(SchemeDictionaryDestination):
        def write_file(
            self,
            scheme: Scheme,
            path: str | os.PathLike[str],
            stream: BinaryIO,
            is_executable: bool,
        ) -> RecordEntry:
            rel = os.fspath(path)
            stored = Path(_schemes(entry, dist)[scheme]) / rel
            if scheme in _LIB_SCHEMES and stored.is_file():
                target = self._path_with_destdir(scheme, rel)
                _link(stored, target)
                if rel in stored_hashes:
                    digest, size = stored_hashes[rel]
                else:
                    data = stored.read_bytes()
                    digest, size = _b64(hashlib.sha256(data).digest()), len(data)
                return RecordEntry(rel, Hash("sha256", digest), size)
            return super().write_file(scheme, path, stream, is_executable)

    with WheelFile.open(wheel) as source:
        dist = source.distribution
        schemes = _schemes(venv, dist)
        stored_site = Path(_schemes(entry, dist)["purelib"])
        stored_hashes = _stored_record(stored_site, source.dist_info_dir)
        destination = Linking(schemes, interpreter=str(venv / "bin" / "python"),
                              script_kind="posix")  # fmt: skip
        install(source, destination, {"INSTALLER": INSTALLER_NAME, "REQUESTED": b""})
        dist_info = source.dist_info_dir
    site = Path(schemes["purelib"])
    stored_pyc = sorted(stored_site.rglob("__pycache__/*.pyc"))
    pyc_rows = []
    for pyc in stored_pyc:
        rel = pyc.relative_to(stored_site)
        _link(pyc, site / rel)
        pyc_rows.append(rel.as_posix())
    record = site / dist_info / "RECORD"
    rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
    hashed = _pyc_hashes(entry)
    rows[-1:-1] = [[rel, *hashed[rel]] for rel in pyc_rows]  # RECORD's own row stays last
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    record.write_text(out.getvalue(), encoding="utf-8")


def _stored_record(stored_site: Path, dist_info: str) -> dict[str, tuple[str, int]]:
    """Hash and size of each stored file, from the RECORD the store's unpacking wrote."""
    record = stored_site / dist_info / "RECORD"
    found = {}
    for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
        if len(row) == 3 and row[1].startswith("sha256="):
            found[row[0]] = (row[1].removeprefix("sha256="), int(row[2]))
    return found


def _pyc_hashes(entry: Path) -> dict[str, list[str]]:
    """RECORD fields (hash, size) of the stored bytecode, computed when the entry was made."""
    text = (entry / _PYC_RECORD).read_text(encoding="utf-8")
    return {row[0]: row[1:] for row in csv.reader(io.StringIO(text))}


def install(
    venv: Path,
    requirements: Path | None,
    wheelhouse: Sequence[Path],
    store: Path,
    workers: int | None = None,
    tools: Sequence[Path] = (),
) -> None:
    """Install every pin of `requirements` from `wheelhouse` into the virtualenv `venv`,
    through the runtime's wheel store `store`; `tools`: wheels of this installation
    (pip, for the environment's users) installed alongside, unpinned."""
    pins = read_pins(requirements) if requirements is not None else []
    own = [(w, _sha256(w)) for w in tools]
    wheels = own + wheels_for(pins, wheelhouse)
    store.mkdir(parents=True, exist_ok=True, mode=0o755)
    count = workers or os.cpu_count() or 1
    from installer.exceptions import InstallerError

    problem = (OSError, ValueError, KeyError, InstallerError, zipfile.BadZipFile)
    missing = [(w, d) for w, d in wheels if not (store / d / _COMPLETE).is_file()]
    try:
        # pip is left uncompiled, as virtualenv seeds it: it compiles what it imports.
        _fill(store, missing, count, {digest for _w, digest in own})
    except problem as exc:
        raise VenvError(f"{', '.join(w.name for w, _ in missing)}: cannot unpack: {exc}") from None
    for wheel, digest in wheels:
        try:
            _install_one(venv, wheel, store / digest)
        except problem as exc:
            raise VenvError(f"{wheel}: cannot install it: {exc}") from None


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
            if p.is_file() and not p.is_symlink() and p.name not in (_COMPLETE, _PYC_RECORD)
        )
        if not used:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed
