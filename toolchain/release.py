"""`make release`: the wheelhouse and the self-contained `.plugin` file."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import time
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from toolchain import FORMAT_VERSION, artifact, config, freeze, node, releaseignore
from toolchain.errors import CommandError, ReleaseError
from toolchain.layout import ALLOW_BINARY, NPM_CACHE, WHEELHOUSE, PluginDir
from toolchain.runner import clean_env, python, run

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
    from toolchain.venv import fingerprint

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
        digest = "sha256:" + artifact.sha256_file(path)
        if digest not in pin.hashes and not (from_source or name in built):
            raise ReleaseError(f"{path.name}: sha256 not among the hashes pinned in {req}")
    missing = sorted(p.name for p in pins if p.name not in wheels)
    if missing:
        raise ReleaseError(f"{req}: no wheel for {', '.join(missing)}; run `make clean release`")


def _version(text: str):  # type: ignore[no-untyped-def]
    from packaging.version import Version

    return Version(text)


def source_date_epoch() -> int:
    """`SOURCE_DATE_EPOCH` when set (reproducible builds), else now."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        return int(time.time())
    try:
        return int(value)
    except ValueError:
        raise ReleaseError(f"SOURCE_DATE_EPOCH={value!r} is not an integer") from None


def metadata(cfg: config.PluginConfig, epoch: int) -> dict[str, object]:
    """The metadata document of a release."""
    general = cfg.general
    requires = [f"{n}{s}" for n, s in config.parse_requires(general.get("_requires", ""))]
    return {
        "name": cfg.name,
        "version": cfg.version,
        "release": cfg.release,
        "summary": general.get("_summary", ""),
        "license": general.get("_license", ""),
        "url": general.get("_url", ""),
        "maintainer": general.get("_maintainer", ""),
        "vendor": general.get("_vendor", ""),
        "requires": requires,
        "build_host": socket.gethostname(),
        "build_date": dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python_tag": artifact.python_tag(),
        "platform": artifact.platform_tag(),
        "format_version": FORMAT_VERSION,
    }


def _tree(source: Path, prefix: str) -> list[tuple[str, str]]:
    """`(path in the archive, source path)` of a directory and everything below it."""
    members = [(prefix, os.fspath(source))]
    for path in source.rglob("*"):
        members.append((f"{prefix}/{path.relative_to(source).as_posix()}", os.fspath(path)))
    return members


def release(plugin: PluginDir, output: Path | None = None) -> Path:
    """Build `NAME-VERSION-RELEASE.PLATFORM.plugin` in the plugin dir (or at `output`)."""
    cfg = config.load(plugin.config)
    house = build_wheelhouse(plugin)
    epoch = source_date_epoch()
    out = output or plugin.root / artifact.artifact_name(cfg.name, cfg.version, cfg.release)
    root, wheel_dir = os.fspath(plugin.root), os.fspath(house)
    members = [(rel, os.path.join(root, rel)) for rel in releaseignore.select(plugin.root)]
    members += [
        (f"{WHEELHOUSE}/{p.name}", os.path.join(wheel_dir, p.name)) for p in house.glob("*.whl")
    ]
    members.append((WHEELHOUSE, wheel_dir))
    if node.wanted(plugin.root):
        members += _tree(node.pack_cache(plugin.root, house / "npm-cache"), NPM_CACHE)
    artifact.pack(out, cfg.name, members, metadata(cfg, epoch), mtime=epoch)
    os.utime(out)  # newer than the directory entry its rename just changed: make sees it fresh
    return out
