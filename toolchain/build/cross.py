"""A release for other targets: the wheels of every target it is built for.

`PLUGIN_TARGETS` (or `[general] _targets` in config.ini) names them, as
`cp312-manylinux_2_17_x86_64 cp311-manylinux_2_28_aarch64`. For each target, each pin
whose markers hold there gets a wheel that installs there: the one of this host's
wheelhouse when it fits (pure wheels are shared by every target), else a binary wheel
fetched for that Python and platform by `pip download --only-binary=:all: --platform
--python-version --implementation --abi`, checked against the pinned hashes and kept in
`.wheelhouse-targets/TARGET/`. A pin with no wheel for a target is one error naming both.
"""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from toolchain.artifact import spec
from toolchain.build import freeze
from toolchain.core import settings
from toolchain.core.errors import CommandError, ReleaseError
from toolchain.core.layout import CONFIG_INI, PluginDir
from toolchain.core.pins import Pin
from toolchain.core.runner import clean_env, python, run
from toolchain.core.targets import Target, parse

TARGETS_DIR = ".wheelhouse-targets"


def chosen(plugin: PluginDir, general: dict[str, str]) -> list[Target] | None:
    """The targets asked for (`$PLUGIN_TARGETS`, else `_targets`); None: this host only."""
    text, where = settings.targets(), settings.TARGETS
    if text is None:
        text, where = general.get("_targets", ""), f"{plugin.root / CONFIG_INI}: _targets"
    if not text.strip():
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise ReleaseError(f"{where}: {exc}") from None


def platform_of(targets: list[Target] | None) -> str | None:
    """What a release's file name says of its targets: the one target
    (`cp312-manylinux_2_17_x86_64`), `multi` for several, None for this host's."""
    if not targets:
        return None
    return str(targets[0]) if len(targets) == 1 else "multi"


def _fitting(directory: Path, pin: Pin, target: Target, hashed: bool) -> Path | None:
    """A wheel of `pin` in `directory` that installs on `target` (its hash pinned)."""
    if not directory.is_dir():
        return None
    for wheel in sorted(directory.glob("*.whl")):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        if canonicalize_name(name) != pin.name or version != Version(pin.version):
            continue
        pinned = not hashed or f"sha256:{spec.sha256_file(wheel)}" in pin.hashes
        if target.accepts(wheel.name) and pinned:
            return wheel
    return None


def _download(plugin: PluginDir, pin: Pin, target: Target) -> Path:
    cache = plugin.root / TARGETS_DIR / str(target)
    found = _fitting(cache, pin, target, hashed=True)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    req = cache / ".requirement.txt"
    hashes = " ".join(f"--hash={h}" for h in sorted(pin.hashes))
    options = freeze.index_options(plugin.req_out.read_text(encoding="utf-8"))
    req.write_text("\n".join([*options, f"{pin.name}=={pin.version} {hashes}"]) + "\n", "utf-8")
    major, minor = target.version
    cmd = [python(), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--require-hashes", "--no-input", "--progress-bar", "off", "--dest", str(cache),
           "--python-version", f"{major}.{minor}",
           "--implementation", target.python[:2]]  # fmt: skip
    if target.python.startswith("cp"):
        cmd += ["--abi", target.python, "--abi", "abi3", "--abi", "none"]
    cmd += [f"--platform={platform}" for platform in target.platforms()]
    no_wheel = f"{pin.name}=={pin.version}: no wheel for target {target}"
    try:
        run([*cmd, "-r", str(req)], cwd=plugin.root, env=clean_env(), what=no_wheel)
    except CommandError as exc:
        last = exc.output.strip().splitlines()[-1:] or [""]
        raise ReleaseError(
            f"{no_wheel} ({last[0]}); pin a version that has one, or drop that target"
        ) from None
    found = _fitting(cache, pin, target, hashed=True)
    if found is None:
        raise ReleaseError(f"{no_wheel} with a pinned hash; run `make superclean all`")
    return found


def _requires(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    import zipfile
    from email.parser import HeaderParser

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8", "replace")
    return HeaderParser().parsestr(text, headersonly=True).get_all("Requires-Dist") or []


def _check_complete(wheel: Path, pin: Pin, pins: dict[str, Pin], target: Target) -> None:
    """Refuse a target where a pinned package needs one the pins lack (they were frozen for
    this host: a dependency under a marker that holds only there is not among them)."""
    from packaging.requirements import InvalidRequirement, Requirement

    environment = {**target.environment(), "extra": ""}
    for line in _requires(wheel):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        have = pins.get(canonicalize_name(req.name))
        if have is None or not req.specifier.contains(have.version, prereleases=True):
            found = f"{have.name}=={have.version}" if have else "none"
            raise ReleaseError(
                f"{pin.name}=={pin.version} requires {req} on {target}; the pins (frozen "
                f"on this host) have {found}: add it to requirements-to-freeze.txt"
            )


def wheels(plugin: PluginDir, house: Path, targets: list[Target]) -> dict[str, list[Path]]:
    """The wheels of a release for each of `targets` (by target): one per pin holding
    there, each checked to have what it requires among those pins; `house` is this
    host's wheelhouse (already checked)."""
    chosen: dict[str, list[Path]] = {}
    pins = freeze.read_pins(plugin.req_out)
    for target in targets:
        environment = target.environment()
        holding = {pin.name: pin for pin in pins if pin.holds(environment)}
        found = []
        for pin in holding.values():
            wheel = _fitting(house, pin, target, hashed=False) or _download(plugin, pin, target)
            _check_complete(wheel, pin, holding, target)
            found.append(wheel)
        chosen[str(target)] = sorted(found, key=lambda w: w.name)
    return chosen
