"""Installing an artifact's wheelhouse straight into a virtualenv: no pip, no resolver.

At install time there is nothing to resolve and nothing to download: every pin is exact,
its wheel is in the wheelhouse and its hash is in `requirements3.txt`. So each wheel is
checked against its pinned hashes, put in the runtime's wheel store (`localenv.store`)
unless it is there already, and installed from there the way pip lays it out: files
hard-linked by scheme (copied where the filesystem refuses), entry-point scripts for this
virtualenv's python, RECORD (bytecode included, with hashes), INSTALLER and REQUESTED. A
wheel of library files only is installed by linking alone; any other (`.data/`) through
pypa/installer.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from toolchain.core import pins as frozen
from toolchain.core.errors import VenvError
from toolchain.core.pins import Pin
from toolchain.localenv import store

if TYPE_CHECKING:
    from installer.scripts import ScriptSection


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


def wheels_for(pins: Sequence[Pin], wheelhouse: Sequence[Path]) -> list[tuple[Path, str]]:
    """(wheel, sha256) of each pin that holds here (its markers), from the wheel
    directories: of the wheels that install on this interpreter (a release for several
    targets has others), the best by packaging's tag order, its hash checked."""
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import Version

    rank = {tag: i for i, tag in enumerate(sys_tags())}
    found: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for directory in wheelhouse:
        for wheel in sorted(directory.glob("*.whl")):
            try:
                name, version, _build, tags = parse_wheel_filename(wheel.name)
            except InvalidWheelFilename:
                continue
            best = min((rank[t] for t in tags if t in rank), default=None)
            if best is not None:
                found.setdefault((canonicalize_name(name), str(version)), []).append((best, wheel))
    chosen = []
    for pin in (p for p in pins if p.holds()):
        candidates = [
            w for _rank, w in sorted(found.get((pin.name, str(Version(pin.version))), []))
        ]
        match = [(w, h) for w in candidates if f"sha256:{(h := _sha256(w))}" in pin.hashes]
        if not match:
            what = "no wheel for this host" if not candidates else "no wheel with a pinned hash"
            raise VenvError(
                f"{pin.name}=={pin.version}: {what} in {', '.join(map(str, wheelhouse))}"
            )
        chosen.append(match[0])
    return chosen


def _link(source: Path | str, target: Path | str, made: set[str] | None = None) -> None:
    """Hard-link `source` to `target`; copy when the filesystem refuses a link. `made`:
    the directories known to exist already (filled as they are made)."""
    parent = os.path.dirname(target)
    if made is None or parent not in made:
        os.makedirs(parent, exist_ok=True)
        if made is not None:
            made.add(parent)
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, target)
        os.chmod(target, os.stat(target).st_mode | 0o200)


_PIP_LAUNCHER = """\
import sys
from {module} import {name}
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit({func}())
"""


def _script(name: str, python: str, module: str, attr: str) -> bytes:
    """The launcher of an entry point as pip writes it: pip's template, distlib's shebang
    (through /bin/sh when the interpreter's path is too long for the kernel, or quoted)."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"entry point {name!r} is not a file name")
    if " " not in python and len(python) + 3 <= 127:
        shebang = f"#!{python}\n"
    else:
        exe = f'"{python}"' if " " in python else python
        shebang = f"#!/bin/sh\n'''exec' {exe} \"$0\" \"$@\"\n' '''\n"
    launcher = _PIP_LAUNCHER.format(module=module, name=attr.split(".")[0], func=attr)
    return (shebang + launcher).encode("utf-8")


def _install_linked(
    venv: Path, entry: Path, rows_of_library: list[list[str]], metadata: dict[str, bytes]
) -> None:
    """Install a library-only wheel from its store `entry`: every file (bytecode included)
    linked, entry-point scripts generated for this virtualenv's python, INSTALLER,
    REQUESTED and RECORD written in pypa/installer's order, as pip writes them."""
    from installer.utils import parse_entrypoints

    site, stored = store.schemes(venv, "x")["purelib"], store.schemes(entry, "x")["purelib"]
    library, compiled = rows_of_library, store.compiled_rows(entry)
    made: set[str] = set()
    for row in library + compiled:
        _link(f"{stored}/{row[0]}", f"{site}/{row[0]}", made)
    dist_info = next(r[0].split("/")[0] for r in library if ".dist-info/" in r[0])
    scripts = []
    points = Path(stored, dist_info, "entry_points.txt")
    if points.is_file():
        bin_dir = venv / "bin"
        for name, module, attr, _section in parse_entrypoints(points.read_text("utf-8")):
            data = _script(name, str(bin_dir / "python"), module, attr)
            store.write_new(str(bin_dir / name), io.BytesIO(data), 0o755)
            scripts.append(store.record_row(os.path.relpath(bin_dir / name, site), data))
    written = []
    for name, data in metadata.items():
        store.write_new(f"{site}/{dist_info}/{name}", io.BytesIO(data), 0o644)
        written.append(store.record_row(f"{dist_info}/{name}", data))
    rows = sorted([*scripts, *library, *written, *compiled, [f"{dist_info}/RECORD", "", ""]])
    store.write_new(f"{site}/{dist_info}/RECORD", io.BytesIO(store.rows_text(rows)), 0o644)


def _install_one(venv: Path, wheel: Path, entry: Path, metadata: dict[str, bytes]) -> None:
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
            stored = Path(store.schemes(entry, dist)[scheme]) / rel
            if scheme in ("purelib", "platlib") and stored.is_file():
                target = self._path_with_destdir(scheme, rel)
                _link(stored, target)
                if rel in stored_hashes:
                    digest, size = stored_hashes[rel]
                else:
                    _rel, field, length = store.record_row(rel, stored.read_bytes())
                    digest, size = field.removeprefix("sha256="), int(length)
                return RecordEntry(rel, Hash("sha256", digest), size)
            return super().write_file(scheme, path, stream, is_executable)

        def write_script(
            self, name: str, module: str, attr: str, section: ScriptSection
        ) -> RecordEntry:
            data = _script(name, str(venv / "bin" / "python"), module, attr)
            return self.write_file(Scheme("scripts"), name, io.BytesIO(data), True)

    with WheelFile.open(wheel) as source:
        dist = source.distribution
        schemes = store.schemes(venv, dist)
        stored_site = Path(store.schemes(entry, dist)["purelib"])
        stored_hashes = _stored_record(stored_site, source.dist_info_dir)
        destination = Linking(schemes, interpreter=str(venv / "bin" / "python"),
                              script_kind="posix")  # fmt: skip
        install(source, destination, metadata)
        dist_info = source.dist_info_dir
    site = schemes["purelib"]
    compiled = store.compiled_rows(entry)
    for row in compiled:
        _link(f"{stored_site}/{row[0]}", f"{site}/{row[0]}")
    record = Path(site, dist_info, "RECORD")
    store.write_rows(record, sorted(store.read_rows(record) + compiled))  # as pip: sorted


def _stored_record(stored_site: Path, dist_info: str) -> dict[str, tuple[str, int]]:
    """Hash and size of each stored file, from the RECORD the store's unpacking wrote."""
    record = stored_site / dist_info / "RECORD"
    found = {}
    for row in store.read_rows(record):
        if len(row) == 3 and row[1].startswith("sha256="):
            found[row[0]] = (row[1].removeprefix("sha256="), int(row[2]))
    return found


def install(
    venv: Path,
    requirements: Path | None,
    wheelhouse: Sequence[Path],
    where: Path,
    create: Callable[[], None],
    *,
    workers: int | None = None,
    tools: Sequence[Path] = (),
    installer: str = "pip",
) -> None:
    """Install every pin of `requirements` from `wheelhouse` into the virtualenv `venv`,
    through the runtime's wheel store at `where`.

    `create()` makes the empty virtualenv; it runs while the store is filled. `tools`:
    wheels of this installation (pip, for the environment's users) installed alongside,
    unpinned. `installer`: the name INSTALLER gives (the backend's: `pip list` and `pip
    uninstall` treat "pip"'s packages as theirs). Wheels are linked in by `workers`
    threads (default: one per core): making directories and links waits on the disk.
    """
    from concurrent.futures import ThreadPoolExecutor

    from installer.exceptions import InstallerError

    pins = read_pins(requirements) if requirements is not None else []
    own = [(w, _sha256(w)) for w in tools]
    wheels = own + wheels_for(pins, wheelhouse)
    where.mkdir(parents=True, exist_ok=True, mode=0o755)
    count = workers or os.cpu_count() or 1
    missing = [(w, d) for w, d in wheels if not store.is_complete(where / d)]
    with ThreadPoolExecutor(max_workers=1) as side:
        creating = side.submit(create)
        # pip is left uncompiled, as virtualenv seeds it: it compiles what it imports.
        store.fill(where, missing, count, {digest for _w, digest in own})
    creating.result()
    metadata = {"INSTALLER": f"{installer}\n".encode(), "REQUESTED": b""}
    problem = (OSError, ValueError, KeyError, InstallerError, zipfile.BadZipFile)
    with ThreadPoolExecutor(max_workers=count) as linking:
        jobs = [(w, linking.submit(_install, venv, w, where / d, metadata)) for w, d in wheels]
        for wheel, job in jobs:
            try:
                job.result()
            except problem as exc:
                raise VenvError(f"{wheel}: cannot install it: {exc}") from None


def _install(venv: Path, wheel: Path, entry: Path, metadata: dict[str, bytes]) -> None:
    rows = store.library_rows(entry)
    if rows is not None:
        _install_linked(venv, entry, rows, metadata)
    else:
        _install_one(venv, wheel, entry, metadata)
