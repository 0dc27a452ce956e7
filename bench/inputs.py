"""The benchmark's inputs, built locally under bench/.cache/ and reused between runs.

Filled once (network needed the first time): a venv with the baselines (pex, shiv), a
wheel cache with every wheel the cases need, an installed numpy/pandas tree and a tree
of small files. Everything a case then runs is offline: `--no-index --find-links`.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from measure import BenchError

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
TOOL_BIN = Path(sys.executable).parent  # the toolchain's console scripts live beside it

TEN_PINS = [
    "requests",
    "idna",
    "urllib3",
    "certifi",
    "charset-normalizer",
    "six",
    "attrs",
    "click",
    "packaging",
    "python-dateutil",
]
HEAVY = ["numpy", "pandas"]
BASELINE_TOOLS = ["pex", "shiv"]
_PIP: list[str | Path] = [sys.executable, "-m", "pip"]

# The same 20 patterns for .releaseignore and `tar --exclude-from`: names without a slash
# mean the same in both (any path component, any depth).
IGNORE_PATTERNS = [
    "*.pyc",
    "*.log",
    "*.tmp",
    "*.bak",
    "*.swp",
    "*.orig",
    "*~",
    ".DS_Store",
    "node_modules",
    "build",
    "dist",
    ".tox",
    "*.egg-info",
    ".coverage",
    "htmlcov",
    "*.o",
    "*.so.debug",
    "tmp",
    ".cache",
    "*.sqlite",
]


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of every timed command: no pip configuration, no index, our tools."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "PLUGIN_", "UV_", "VIRTUALENV_", "PEX_"))
        and k not in ("PYTHONPATH", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    env["PATH"] = f"{TOOL_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["VIRTUALENV_OVERRIDE_APP_DATA"] = str(CACHE / "virtualenv-app-data")
    env["UV_CACHE_DIR"] = str(CACHE / "uv-cache")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def sh(
    argv: list[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    """Run an untimed set-up command; raise BenchError with its output's tail on failure."""
    proc = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env if env is not None else offline_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise BenchError(f"{' '.join(map(str, argv[:4]))} failed: " + " | ".join(tail))
    return proc.stdout


def _online_env() -> dict[str, str]:
    """For filling the caches: the user's own pip configuration and index."""
    env = dict(os.environ)
    env.pop("PIP_NO_INDEX", None)
    return env


def tool(name: str) -> Path:
    """A console script of the toolchain's installation."""
    path = TOOL_BIN / name
    if not path.exists():
        raise BenchError(f"{path}: missing; install the toolchain (`make install`)")
    return path


def baseline_venv() -> Path:
    """bench/.cache/venv with pex and shiv, installed from PyPI once."""
    root = CACHE / "venv"
    stamp = root / ".bench-installed"
    if not stamp.exists():
        shutil.rmtree(root, ignore_errors=True)
        venv.create(root, with_pip=True)
        py = root / "bin" / "python"
        sh([py, "-m", "pip", "install", "--quiet", *BASELINE_TOOLS], env=_online_env())
        stamp.write_text("ok\n")
    return root / "bin"


def wheel_cache() -> Path:
    """bench/.cache/wheels: every wheel of the cases, for this interpreter, downloaded once."""
    wheels = CACHE / "wheels"
    stamp = wheels / ".bench-complete"
    if not stamp.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        sh(
            [*_PIP, "download", "-q", "--only-binary", ":all:", "-d", wheels, *TEN_PINS, *HEAVY],
            env=_online_env(),
        )
        stamp.write_text("ok\n")
    return wheels


def installed_tree(wheels: Path, package: str) -> Path:
    """The installed files of numpy and pandas (a `pip install --target`), made once."""
    target = CACHE / "site"
    stamp = target / ".bench-complete"
    if not stamp.exists():
        shutil.rmtree(target, ignore_errors=True)
        sh([*_PIP, "install", "-q", "--no-index", "-f", wheels, "--target", target, *HEAVY])
        stamp.write_text("ok\n")
    return target / package


def create_plugin(parent: Path, name: str, requirements: list[str], wheels: Path) -> Path:
    """A plugin from the default template whose requirements resolve from `wheels` only."""
    root = parent / name
    shutil.rmtree(root, ignore_errors=True)
    parent.mkdir(parents=True, exist_ok=True)
    sh([tool("bootstrap_plugin.py"), "create", "--no-input", name], cwd=parent)
    lines = ["--no-index", f"--find-links {wheels}", *requirements]
    req = root / "python3_virtualenv_sources" / "requirements-to-freeze.txt"
    req.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sh(["make", "-s", "-C", root, "freeze"])
    return root


def small_files_tree(count: int) -> Path:
    """A plugin holding `count` small text files, some of them matched by IGNORE_PATTERNS."""
    parent = CACHE / "trees"
    name = f"many{count}"
    root = parent / name
    stamp = parent / f".{name}-complete"
    if stamp.exists() and root.is_dir():
        return root
    shutil.rmtree(root, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    sh([tool("bootstrap_plugin.py"), "create", "--no-input", name], cwd=_mkdir(parent))
    rnd = random.Random(count)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
    ]
    suffixes = [".py"] * 8 + [".txt", ".json", ".log", ".tmp", ".pyc", ".bak"]
    per_dir = 1000
    for d in range(max(1, count // per_dir)):
        sub = root / "data" / f"d{d:03d}"
        if d % 17 == 0:
            sub = sub / "build"
        elif d % 23 == 0:
            sub = sub / "node_modules"
        sub.mkdir(parents=True)
        for f in range(min(per_dir, count)):
            text = " ".join(rnd.choice(words) for _ in range(rnd.randint(10, 120)))
            (sub / f"f{f:04d}{rnd.choice(suffixes)}").write_text(text + "\n")
    (root / ".releaseignore").write_text("\n".join(IGNORE_PATTERNS) + "\n")
    (root / "python3_virtualenv_sources" / "requirements-to-freeze.txt").write_text("")
    sh(["make", "-s", "-C", root, "freeze"])
    stamp.write_text("ok\n")
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`."""
    files = size = 0
    for current, _dirs, names in os.walk(root):
        for n in names:
            files += 1
            size += os.lstat(os.path.join(current, n)).st_size
    return files, size
