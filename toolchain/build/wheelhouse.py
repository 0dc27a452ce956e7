"""The wheelhouse of a release: one wheel per pin of `requirements3.txt`, hash-checked.

`pip download --require-hashes` fetches exactly the files pip picks for the pins (a wheel,
or an sdist where no wheel fits) and checks each against the pinned hashes; this module
checks them again itself. A wheel is kept as it is. An sdist is built into a wheel by
`pip wheel`, and that wheel is accepted because the sdist it was built from carries a
pinned hash: the record of it (`built-from-sdist.json`: wheel, sdist and its sha256)
goes into the release's metadata. Nothing depends on how pip words its output, nor on
whether pip's cache already held a wheel it built before.

The wheelhouse lives in `.wheelhouse/` and is reused while the pins, the binary policy
and the interpreter do not change.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from toolchain.artifact import spec
from toolchain.build import freeze
from toolchain.core.errors import CommandError, ReleaseError
from toolchain.core.layout import ALLOW_BINARY, PluginDir
from toolchain.core.pins import Pin
from toolchain.core.runner import clean_env, python, run

WHEELHOUSE_DIR = ".wheelhouse"
BUILT_RECORD = "built-from-sdist.json"
_WHEEL_STAMP = ".stamp"
_DOWNLOADS = ".downloads"
_FIX = "run `make superclean all` to freeze again"


def wheelhouse_dir(plugin: PluginDir) -> Path:
    """The plugin's wheel cache, one wheel per pin, reused while the pins do not change."""
    return plugin.root / WHEELHOUSE_DIR


def built_from_sdists(house: Path) -> list[dict[str, str]]:
    """The record of the wheels built from sdists: `wheel`, `sdist`, `sha256` (of the sdist)."""
    path = house / BUILT_RECORD
    if not path.is_file():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    return [dict(item) for item in doc] if isinstance(doc, list) else []


def _pip(args: list[str], plugin: PluginDir, what: str) -> None:
    cmd = [python(), "-m", "pip", *args, "--no-input", "--progress-bar", "off"]
    try:
        run(cmd, cwd=plugin.root, env=clean_env(), what=what)
    except CommandError as exc:
        fix = ""
        if "DO NOT MATCH THE HASHES" in exc.output:
            fix = f"; the files differ from the pinned hashes: {_FIX}"
        raise ReleaseError(f"{plugin.req_out}: cannot build the wheelhouse: {exc}{fix}") from None


def _project(path: Path) -> str:
    """The canonical project name of a downloaded wheel or sdist."""
    try:
        if path.name.endswith(".whl"):
            return str(parse_wheel_filename(path.name)[0])
        return str(parse_sdist_filename(path.name)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        raise ReleaseError(f"{path.name}: neither a wheel nor an sdist; {_FIX}") from None


def build_wheelhouse(plugin: PluginDir) -> Path:
    """Fill the wheelhouse from `requirements3.txt` (skipped when the pins did not change)."""
    house = wheelhouse_dir(plugin)
    stamp = house / _WHEEL_STAMP
    allow_binary = (plugin.root / ALLOW_BINARY).exists()
    from toolchain.localenv.venv import fingerprint

    want = fingerprint(plugin.req_out, allow_binary)
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == want:
        os.utime(stamp)
        return house
    if not plugin.req_out.is_file():
        raise ReleaseError(f"{plugin.req_out}: missing; run `make` to freeze the requirements")
    pins = {p.name: p for p in freeze.read_pins(plugin.req_out)}
    tmp = plugin.root / f"{WHEELHOUSE_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    downloads = tmp / _DOWNLOADS
    downloads.mkdir(parents=True)
    binary = [] if allow_binary else ["--no-binary", ":all:"]
    try:
        if pins:
            req = str(plugin.req_out.absolute())
            args = ["download", "--require-hashes", "--no-deps", "--dest", str(downloads)]
            _pip([*args, *binary, "-r", req], plugin, "pip download -r requirements3.txt")
        built = []
        for path in sorted(downloads.iterdir()):
            name = _project(path)
            pin = pins.get(name)
            digest = "sha256:" + spec.sha256_file(path)
            if pin is None or digest not in pin.hashes:
                where = f"for {name} in {plugin.req_out}"
                raise ReleaseError(
                    f"{path.name}: sha256 not among the hashes pinned {where}; {_FIX}"
                )
            if path.name.endswith(".whl"):
                os.replace(path, tmp / path.name)
                continue
            before = set(tmp.glob("*.whl"))
            args = ["wheel", "--no-deps", "--wheel-dir", str(tmp), *binary, str(path)]
            _pip(args, plugin, f"pip wheel {path.name}")
            new = [w for w in set(tmp.glob("*.whl")) - before if _project(w) == name]
            if len(new) != 1:
                raise ReleaseError(f"{path.name}: building it gave no wheel of {name}; {_FIX}")
            built.append({"wheel": new[0].name, "sdist": path.name, "sha256": digest})
        shutil.rmtree(downloads)
        (tmp / BUILT_RECORD).write_text(json.dumps(built, indent=1) + "\n", encoding="utf-8")
        check_wheelhouse(tmp, list(pins.values()), plugin.req_out)
        (tmp / _WHEEL_STAMP).write_text(want, encoding="utf-8")
        shutil.rmtree(house, ignore_errors=True)
        os.replace(tmp, house)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return house


def check_wheelhouse(house: Path, pins: list[Pin], req: Path) -> None:
    """One wheel per pin, of the pinned version, each vouched for by a pinned hash: its own,
    or that of the sdist it was built from (`built-from-sdist.json`)."""
    from_sdist = {item["wheel"]: item for item in built_from_sdists(house)}
    wheels: dict[str, Path] = {}
    for path in sorted(house.glob("*.whl")):
        try:
            name, version, _build, _tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            raise ReleaseError(f"{path}: not a wheel file name; run `make clean release`") from None
        if name in wheels:
            raise ReleaseError(f"{house}: two wheels for {name}; run `make clean release`")
        wheels[name] = path
        pin = next((p for p in pins if p.name == name), None)
        if pin is None:
            raise ReleaseError(f"{path.name}: not pinned in {req}; {_FIX}")
        if str(version) != pin.version and version != _version(pin.version):
            raise ReleaseError(f"{path.name}: {req} pins {name}=={pin.version}")
        record = from_sdist.get(path.name)
        vouched = record["sha256"] if record else "sha256:" + spec.sha256_file(path)
        if vouched not in pin.hashes:
            what = f"the sdist it was built from ({record['sdist']})" if record else "its sha256"
            raise ReleaseError(
                f"{path.name}: {what} is not among the hashes pinned in {req}; {_FIX}"
            )
    missing = sorted(p.name for p in pins if p.name not in wheels)
    if missing:
        raise ReleaseError(f"{req}: no wheel for {', '.join(missing)}; run `make clean release`")


def _version(text: str):  # type: ignore[no-untyped-def]
    from packaging.version import Version

    return Version(text)
