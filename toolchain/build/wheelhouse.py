"""The wheelhouse of a release: one wheel per pin of `requirements3.txt`, hash-checked.

Built by `pip wheel --require-hashes` into `.wheelhouse/` and reused while the pins, the
binary policy and the interpreter do not change.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from toolchain.artifact import spec
from toolchain.build import freeze
from toolchain.core.errors import CommandError, ReleaseError
from toolchain.core.layout import ALLOW_BINARY, PluginDir
from toolchain.core.runner import clean_env, python, run

WHEELHOUSE_DIR = ".wheelhouse"
_BUILT = re.compile(r"(?:Created|Building) wheel for (\S+?)[\s:]")
_WHEEL_STAMP = ".stamp"


def wheelhouse_dir(plugin: PluginDir) -> Path:
    """The plugin's wheel cache, one wheel per pin, reused while the pins do not change."""
    return plugin.root / WHEELHOUSE_DIR


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
    pins = freeze.read_pins(plugin.req_out)
    tmp = plugin.root / f"{WHEELHOUSE_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if pins:
            cmd = [
                python(),
                "-m",
                "pip",
                "wheel",
                "--require-hashes",
                "--no-input",
                "--wheel-dir",
                str(tmp),
                "-r",
                str(plugin.req_out.absolute()),
            ]
            if not allow_binary:
                cmd += ["--no-binary", ":all:"]
            try:
                out = run(
                    cmd, cwd=plugin.root, env=clean_env(), what="pip wheel -r requirements3.txt"
                )
            except CommandError as exc:
                raise ReleaseError(
                    f"{plugin.req_out}: cannot build the wheelhouse: {exc}"
                ) from None
            built = {str(canonicalize_name(m)) for m in _BUILT.findall(out)}
        else:
            built = set()
        check_wheelhouse(tmp, pins, plugin.req_out, built=built, from_source=not allow_binary)
        (tmp / _WHEEL_STAMP).write_text(want, encoding="utf-8")
        shutil.rmtree(house, ignore_errors=True)
        os.replace(tmp, house)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return house


def check_wheelhouse(
    house: Path, pins: list[freeze.Pin], req: Path, *, built: set[str], from_source: bool
) -> None:
    """One wheel per pin, of the pinned version; downloaded wheels match a pinned hash.

    A wheel pip built from an sdist (`built`, or every wheel when `from_source`) has no
    pinned hash of its own: pip checked the sdist's hash before building it.
    """

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
            raise ReleaseError(f"{path.name}: not pinned in {req}; run `make superclean all`")
        if str(version) != pin.version and version != _version(pin.version):
            raise ReleaseError(f"{path.name}: {req} pins {name}=={pin.version}")
        digest = "sha256:" + spec.sha256_file(path)
        if digest not in pin.hashes and not (from_source or name in built):
            raise ReleaseError(f"{path.name}: sha256 not among the hashes pinned in {req}")
    missing = sorted(p.name for p in pins if p.name not in wheels)
    if missing:
        raise ReleaseError(f"{req}: no wheel for {', '.join(missing)}; run `make clean release`")


def _version(text: str):  # type: ignore[no-untyped-def]
    from packaging.version import Version

    return Version(text)
