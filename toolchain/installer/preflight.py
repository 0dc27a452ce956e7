"""`plugins.install --check FILE...`: would these files install here? Nothing changes.

Each file is read (its head only) and checked as the install would check it: its
signature under this runtime's policy, the Python and platform it was built for, whether
its name is free (or the strategy replaces it), and the disk space its files and
virtualenv need. For the set: its dependencies (installed, given, or in the repository)
and its pins against the plugins it inherits.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from toolchain.artifact import read, spec, targets
from toolchain.core.errors import ToolchainError
from toolchain.core.layout import MANIFEST, METADATA, Runtime
from toolchain.installer import install, stage, trust

# A plugin's files and its virtualenv (the unpacked wheels) take about twice what its
# manifest counts (the files, wheels included).
_DISK_FACTOR = 2


def _outcome(name: str, step: Callable[[], str], where: Path | None = None) -> dict[str, Any]:
    try:
        return {"check": name, "ok": True, "detail": step()}
    except ToolchainError as exc:
        return {"check": name, "ok": False, "detail": str(exc)}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # hostile documents
        said = f"{where}: its metadata or manifest is malformed ({exc!r}); rebuild it"
        return {"check": name, "ok": False, "detail": said}


def _free(rt: Runtime) -> int:
    place = rt.home
    while not place.exists() and place != place.parent:
        place = place.parent
    return shutil.disk_usage(place).free


def _file(
    rt: Runtime, file: Path, strategy: install.Strategy, new_name: str | None
) -> dict[str, Any]:
    try:
        top, docs = read.read_documents(file)
        meta = spec.load_json(docs[METADATA], file, METADATA)
        manifest = spec.load_json(docs[MANIFEST], file, MANIFEST)
    except ToolchainError as exc:
        return {"file": str(file), "ok": False, "checks": [_outcome("archive", _raise(exc))]}
    name = new_name or top
    warnings: list[str] = []

    def signature() -> str:
        signed = trust.enforce(docs, str(file), rt, warnings)
        said = trust.describe(docs, str(file), rt)
        state = f"{said['state']}" + (f" ({said['key']})" if "key" in said else "")
        return "; ".join([state, *warnings]) if signed or warnings else state

    def target() -> str:
        stage.check_metadata(meta, top, file)
        fitting = next(t for t in targets.of_metadata(meta) if targets.fits_host(t))
        return f"built for {', '.join(targets.of_metadata(meta))}: {fitting} fits this host"

    def name_free() -> str:
        install.check_strategy(rt, name, strategy, meta)
        return f"{name} {meta['version']}-{meta['release']} can be installed"

    def disk() -> str:
        files = manifest.get("files", [])
        size = sum(f.get("size", 0) for f in files if isinstance(f, dict))
        need, free = _DISK_FACTOR * int(size), _free(rt)
        said = f"about {need / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB free in {rt.home}"
        if need > free:
            raise ToolchainError(f"{file}: not enough disk space: {said}")
        return said

    steps = (("signature", signature), ("target", target), ("name", name_free), ("disk", disk))
    checks = [_outcome(n, step, file) for n, step in steps]
    version = f"{meta.get('version')}-{meta.get('release')}"
    ok = all(c["ok"] for c in checks)
    return {"file": str(file), "name": name, "version": version, "ok": ok, "checks": checks}


def _raise(exc: Exception) -> Callable[[], str]:
    def step() -> str:
        raise exc

    return step


def check(
    rt: Runtime,
    files: Sequence[Path],
    *,
    strategy: install.Strategy,
    new_name: str | None = None,
    repository_dir: Path | None = None,
) -> dict[str, Any]:
    """The answer for these files, as `--check --json` prints it."""
    install.check_arguments(files, new_name)
    found = [_file(rt, Path(f), strategy, new_name) for f in files]
    actions: list[Any] = []

    def dependencies() -> str:
        actions.extend(install.plan(rt, files, new_name=new_name, repository_dir=repository_dir))
        return "; ".join(str(a) for a in actions)

    def pins() -> str:
        problems = install.pin_conflicts(rt, actions, new_name) if actions else []
        if problems:
            raise ToolchainError("; ".join(problems))
        return "consistent with the plugins they inherit"

    shared = [_outcome("dependencies", dependencies), _outcome("pins", pins)]
    ok = all(f["ok"] for f in found) and all(c["ok"] for c in shared)
    return {"ok": ok, "files": found, "checks": shared}
