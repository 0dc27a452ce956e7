"""The cases: each of our commands next to the tool a user would pick instead."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import inputs
from inputs import create_plugin, offline_env, sh, tool
from measure import BenchError, Command, Row, compare, pythons_started, run_once


@dataclass
class Context:
    """What every case needs: repetitions, sizes, the scratch dir and the built inputs."""

    reps: int
    quick: bool
    work: Path
    wheels: Path
    baselines: Path  # bin/ of the venv holding pex and shiv
    uv: bool  # whether the toolchain's uv backend can be used

    def scratch(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


def _rm(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _rm_artifacts(root: Path) -> None:
    _rm(*root.glob("*.plugin"))


def installer_available() -> bool:
    """Whether this installation has the operator commands (plugins.install, ...)."""
    import importlib.util

    try:
        return importlib.util.find_spec("toolchain.cli.plugins") is not None and (
            importlib.util.find_spec("toolchain.cli.wrapper") is not None
        )
    except ImportError:
        return False


def artifact_of(root: Path) -> Path:
    """The one .plugin file in a plugin dir."""
    found = sorted(root.glob("*.plugin"))
    if len(found) != 1:
        raise BenchError(f"{root}: expected one .plugin file, found {len(found)}")
    return found[0]


def venv_and_pip(target: Path, wheels: Path, req: Path) -> Command:
    """The baseline of an install: `virtualenv DIR && DIR/bin/pip install -r`, offline."""
    script = 'virtualenv -q "$1" && "$1/bin/pip" install -q --no-index --find-links "$2" -r "$3"'
    return Command(
        "virtualenv + pip install -r",
        ["sh", "-c", script, "sh", target, wheels, req],
        offline_env(),
        prepare=lambda: _rm(target),
    )


def nothing_changed(ctx: Context) -> list[Row]:
    """Cases 1 and 2: `make` and `make release` with nothing to do, against `true`."""
    root = create_plugin(ctx.work, "idle", ["six"], ctx.wheels)
    env = offline_env()
    sh(["make", "-s", "-C", root], env=env)
    sh(["make", "-s", "-C", root, "release"], env=env)
    true = Command("true", ["true"], env)
    rows = []
    for case, target in (
        ("1 make, nothing changed", []),
        ("2 make release, nothing changed", ["release"]),
    ):
        ours = Command(f"make {' '.join(target)}".strip(), ["make", "-s", "-C", root, *target], env)
        row = Row(case, ours.label, "true", "starts no python", None)
        compare(row, ours, true, max(ctx.reps, 10), warmup=True)
        started = pythons_started(ours)
        row.met_override = None if started is None else started == 0
        row.note = (
            "strace unavailable: python starts not counted"
            if started is None
            else f"python processes started: {started}"
        )
        rows.append(row)
    return rows


def cold_release(ctx: Context, measure: bool = True) -> tuple[list[Row], Path]:
    """Case 3: cold `make release` of ten real pins, against pex and shiv (same wheels)."""
    root = create_plugin(ctx.work, "ten", inputs.TEN_PINS, ctx.wheels)
    req = root / "python3_virtualenv_sources" / "requirements3.txt"
    out = ctx.scratch("case3-out")
    pex_root = out / "pex-root"
    env = offline_env()
    ours = Command(
        "make release",
        ["make", "-s", "-C", root, "release"],
        env,
        prepare=lambda: _rm(root / ".wheelhouse", *root.glob("*.plugin")),
    )
    links: list[str | Path] = ["--no-index", "--find-links", ctx.wheels]
    pex = Command(
        "pex -r requirements3.txt",
        [ctx.baselines / "pex", *links, "--pex-root", pex_root, "-r", req, "-o", out / "x.pex"],
        env,
        prepare=lambda: _rm(pex_root, out / "x.pex"),
    )
    shiv = Command(
        "shiv -r requirements3.txt",
        [ctx.baselines / "shiv", "-o", out / "x.pyz", *links, "-r", req],
        env,
        prepare=lambda: _rm(out / "x.pyz"),
    )
    rows = []
    for base in (pex, shiv) if measure else ():
        row = Row("3 cold release, 10 pins", ours.label, base.label, "<= 1.0", 1.0)
        rows.append(compare(row, ours, base, ctx.reps))
        row.note = "cold: no .wheelhouse; pex with an empty --pex-root each run"
    run_once(ours)
    return rows, artifact_of(root)


def install(ctx: Context, artifact: Path, req: Path) -> list[Row]:
    """Case 4: `plugins.install` of that release against virtualenv + pip install.

    A fresh runtime each run: its wheel store starts empty. With uv, the store plays the
    part of uv's cache (where uv keeps unpacked wheels): the warm row installs next to a
    plugin with the same wheels, as an upgrade or a second plugin does.
    """
    runtime = ctx.work / "case4-runtime"
    target = ctx.work / "case4-venv"
    base = venv_and_pip(target, ctx.wheels, req)
    variants: list[tuple[str, str, float | None, str]] = [
        ("pip", "default: direct from the wheelhouse, store cold", 0.5, "<= 0.5")
    ]
    if ctx.uv:
        variants.append(("uv", "uv, store cold", None, "report"))
    rows = []
    for backend, title, limit, target_text in variants:
        ours = Command(
            f"plugins.install (PLUGIN_BACKEND={backend})",
            [tool("plugins.install"), artifact],
            offline_env(PLUGIN_RUNTIME_HOME=str(runtime), PLUGIN_BACKEND=backend),
            prepare=lambda: _rm(runtime),
        )
        row = Row(f"4 install, 10 pins [{title}]", ours.label, base.label, target_text, limit)
        rows.append(compare(row, ours, base, ctx.reps))
    if ctx.uv:
        case = "4 install, 10 pins [uv, store warm]"
        rows.append(_second_install(ctx, artifact, runtime, base, "uv", case, 0.2, None))
    case = "4c install, 10 pins, a second plugin"
    rows.append(_second_install(ctx, artifact, runtime, base, "pip", case, 0.3, 0.10))
    _rm(runtime, target)
    if not ctx.quick:
        rows.append(_heavy_install(ctx))
    return rows


def _disk(path: Path) -> int:
    """Bytes `path` takes on disk, each inode counted once (as `du`)."""
    seen, total = set(), 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(directory, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def _second_install(
    ctx: Context,
    artifact: Path,
    runtime: Path,
    base: Command,
    backend: str,
    case: str,
    limit: float,
    disk_limit: float | None,
) -> Row:
    """A second plugin with the same pins, the wheel store warm; the disk it adds (of the
    first plugin's, `disk_limit` at most)."""
    env = offline_env(PLUGIN_RUNTIME_HOME=str(runtime), PLUGIN_BACKEND=backend)

    def prepare() -> None:
        _rm(runtime)
        sh([tool("plugins.install"), artifact], env=env)

    ours = Command(
        f"plugins.install --new-name second (PLUGIN_BACKEND={backend}, store warm)",
        [tool("plugins.install"), "--new-name", "second", artifact],
        env,
        prepare=prepare,
    )
    row = Row(case, ours.label, base.label, f"<= {limit}", limit)
    compare(row, ours, base, ctx.reps)
    prepare()
    first = _disk(runtime)
    sh([tool("plugins.install"), "--new-name", "second", artifact], env=env)
    grown = _disk(runtime) - first
    share = grown / first if first else 0.0
    row.note = f"disk: first {first / 2**20:.1f} MiB, the second adds {grown / 2**20:.2f} MiB "
    if disk_limit is None:
        row.note += f"({share:.0%})"
    else:
        row.note += f"({share:.0%}; target <= {disk_limit:.0%})"
        if share > disk_limit:
            row.met_override = False
    return row


def _heavy_install(ctx: Context) -> Row:
    """Case 4b: plugins.install of numpy + pandas against virtualenv + pip install."""
    root = create_plugin(ctx.work, "numeric", inputs.HEAVY, ctx.wheels)
    sh(["make", "-s", "-C", root, "release"], env=offline_env())
    artifact = artifact_of(root)
    runtime = ctx.work / "case4b-runtime"
    target = ctx.work / "case4b-venv"
    req = root / "python3_virtualenv_sources" / "requirements3.txt"
    base = venv_and_pip(target, ctx.wheels, req)
    ours = Command(
        "plugins.install (numpy + pandas)",
        [tool("plugins.install"), artifact],
        offline_env(PLUGIN_RUNTIME_HOME=str(runtime)),
        prepare=lambda: _rm(runtime),
    )
    row = Row("4b install, numpy + pandas", ours.label, base.label, "<= 0.7", 0.7)
    compare(row, ours, base, ctx.reps)
    _rm(runtime, target)
    return row


def packing(ctx: Context) -> list[Row]:
    """Case 5a: release of ~100 MB / 3,000 files against `tar czf`; peak RSS of install."""
    package = "numpy" if ctx.quick else "pandas"
    vendored = inputs.installed_tree(ctx.wheels, package)
    root = create_plugin(ctx.work, "heavy", inputs.HEAVY, ctx.wheels)
    shutil.copytree(vendored, root / "vendor" / package)
    env = offline_env()
    sh(["make", "-s", "-C", root, "release"], env=env)  # fills the wheelhouse
    files, size = inputs.tree_size(root)
    out = ctx.scratch("case5-out")
    ours = Command(
        "make release",
        ["make", "-s", "-C", root, "release"],
        env,
        prepare=lambda: _rm_artifacts(root),
    )
    tar = Command(
        "tar czf",
        ["tar", "czf", out / "x.tgz", "--exclude=*.plugin", "-C", root.parent, root.name],
        env,
        prepare=lambda: _rm(out / "x.tgz"),
    )
    row = Row(
        f"5a pack {size / 2**20:.0f} MB / {files} files",
        ours.label,
        tar.label,
        "<= 1.1",
        1.1,
    )
    compare(row, ours, tar, ctx.reps)
    art = artifact_of(root)
    row.note = f"artifact {art.stat().st_size / 2**20:.0f} MB; peak RSS is the largest process"
    rows = [row]
    if installer_available():
        runtime = ctx.work / "case5-runtime"
        target = ctx.work / "case5-venv"
        req = root / "python3_virtualenv_sources" / "requirements3.txt"
        inst = Command(
            "plugins.install",
            [tool("plugins.install"), art],
            offline_env(PLUGIN_RUNTIME_HOME=str(runtime)),
            prepare=lambda: _rm(runtime),
        )
        base = venv_and_pip(target, ctx.wheels, req)
        irow = Row("5a install that artifact (memory)", inst.label, base.label, "report", None)
        compare(irow, inst, base, 1)
        irow.note = "one run each: peak RSS of the install of the 5a artifact"
        rows.append(irow)
        _rm(runtime, target)
    return rows


def many_files(ctx: Context) -> list[Row]:
    """Case 5b: release of 100,000 small files with 20 ignore patterns against tar."""
    count = 20_000 if ctx.quick else 100_000
    root = inputs.small_files_tree(count)
    env = offline_env()
    sh(["make", "-s", "-C", root, "release"], env=env)
    out = ctx.scratch("case5b-out")
    exclude = out / "exclude"
    exclude.write_text("\n".join([*inputs.IGNORE_PATTERNS, "*.plugin"]) + "\n")
    ours = Command(
        "make release",
        ["make", "-s", "-C", root, "release"],
        env,
        prepare=lambda: _rm_artifacts(root),
    )
    tar = Command(
        "tar czf --exclude-from",
        ["tar", "czf", out / "x.tgz", f"--exclude-from={exclude}", "-C", root.parent, root.name],
        env,
        prepare=lambda: _rm(out / "x.tgz"),
    )
    row = Row(f"5b pack {count} small files, 20 patterns", ours.label, tar.label, "<= 1.5", 1.5)
    return [compare(row, ours, tar, ctx.reps)]


def start_up(ctx: Context) -> list[Row]:
    """Cases 6 and 7: plugin_wrapper and plugins.list (200 plugins) against `python -c pass`."""
    root = create_plugin(ctx.work, "tiny", [], ctx.wheels)
    sh(["make", "-s", "-C", root, "release"])
    art = artifact_of(root)
    runtime = ctx.scratch("case6-runtime")
    backend = "uv" if ctx.uv else "pip"
    env = offline_env(PLUGIN_RUNTIME_HOME=str(runtime), PLUGIN_BACKEND=backend)
    sh([tool("plugins.install"), art], env=env)
    python = Command("python -c pass", [sys.executable, "-c", "pass"], env)
    reps = max(ctx.reps * 4, 20)
    wrapper = Command(
        "plugin_wrapper tiny -- true", [tool("plugin_wrapper"), "tiny", "--", "true"], env
    )
    row6 = Row("6 plugin_wrapper NAME -- true", wrapper.label, python.label, "<= 2.0", 2.0)
    compare(row6, wrapper, python, reps, warmup=True)
    chain = [_chained(ctx, f"chain{i}", f"chain{i + 1}" if i < 3 else "") for i in range(4)]
    sh([tool("plugins.install"), *chain], env=env)
    layered = Command(
        "plugin_wrapper chain0 -- true",
        [tool("plugin_wrapper"), "chain0", "--", "true"],
        env,
    )
    row6c = Row(
        "6c plugin_wrapper, a chain of 3 required plugins",
        layered.label,
        python.label,
        "<= 2.0",
        2.0,
    )
    compare(row6c, layered, python, reps, warmup=True)
    count = 20 if ctx.quick else 200
    for i in range(1, count):
        sh([tool("plugins.install"), "--new-name", f"tiny{i:03d}", art], env=env)
    listing = Command(f"plugins.list ({count} plugins)", [tool("plugins.list")], env)
    row7 = Row(f"7 plugins.list, {count} plugins", listing.label, python.label, "<= 4.0", 4.0)
    compare(row7, listing, python, reps, warmup=True)
    return [row6, row6c, row7]


def _chained(ctx: Context, name: str, requires: str) -> Path:
    """The release of a tiny plugin `name` that requires `requires` (none when empty)."""
    root = create_plugin(ctx.work, name, [], ctx.wheels)
    config = root / "config.ini"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("_requires =", f"_requires = {requires}", 1), "utf-8")
    sh(["make", "-s", "-C", root, "release"])
    return artifact_of(root)


def fleet_deploy(ctx: Context, deploy: Callable[[int, Path, Path], list[Row]]) -> list[Row]:
    """Case 9's input: the tiny plugin's release (no dependency), then `deploy`."""
    root = create_plugin(ctx.work, "fleetbench", [], ctx.wheels)
    sh(["make", "-s", "-C", root, "release"])
    return deploy(ctx.reps, ctx.scratch("case9"), artifact_of(root))
