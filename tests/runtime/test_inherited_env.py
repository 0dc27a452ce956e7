"""A plugin inherits the env of the plugins it requires, transitively, nearest first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.plugin_factory import write_tree
from toolchain.core.layout import METADATA, Runtime
from toolchain.runtime import envcache, plugin_env

BIN = Path(sys.executable).parent
SITE = "local/lib/python3.11/site-packages"


def _plugin(rt: Runtime, name: str, requires: str = "", version: str = "1.0") -> Path:
    """An installed-looking plugin: config, metadata with `requires`, a venv with a package."""
    config = (
        f"[general]\nname = {name}\n_version = {version}\n_release = 1\n_requires = {requires}\n"
    )
    root = write_tree(rt.plugin(name), name, version, config=config)
    meta_path = root / METADATA
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta_path.parent.mkdir(exist_ok=True)
    meta["requires"] = [r.strip() for r in requires.split(",") if r.strip()]
    meta_path.write_text(json.dumps(meta))
    (root / "local" / "bin").mkdir(parents=True, exist_ok=True)
    site = root / SITE
    site.mkdir(parents=True, exist_ok=True)
    (site / "shared_pkg.py").write_text(f"WHO = {name!r}\n")
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / f"{name}mod.py").write_text(f"NAME = {name!r}\n")
    return root


def _layers(env: dict[str, str], var: str, rt: Runtime) -> list[str]:
    prefix = str(rt.plugins) + os.sep
    return [p[len(prefix) :] for p in env[var].split(os.pathsep) if p.startswith(prefix)]


@pytest.fixture
def rt() -> Runtime:
    return Runtime.current()


def test_a_chain_of_three_inherits_nearest_first(rt: Runtime) -> None:
    _plugin(rt, "core")
    _plugin(rt, "mid", "core>=1.0")
    app = _plugin(rt, "app", "mid")
    env = plugin_env.variables(rt, "app", app)
    assert _layers(env, "PATH", rt) == [
        "app/bin", "app/local/bin", "mid/bin", "mid/local/bin", "core/bin", "core/local/bin",
    ]  # fmt: skip
    assert _layers(env, "PYTHONPATH", rt) == [
        "app/lib", f"app/{SITE}", "mid/lib", f"mid/{SITE}", "core/lib", f"core/{SITE}",
    ]  # fmt: skip
    assert _layers(env, "LD_LIBRARY_PATH", rt) == ["app/lib", "mid/lib", "core/lib"]


def test_a_diamond_inherits_each_plugin_once_nearest_first(rt: Runtime) -> None:
    _plugin(rt, "core")
    _plugin(rt, "left", "core")
    _plugin(rt, "right", "core")
    app = _plugin(rt, "app", "left, right")
    env = plugin_env.variables(rt, "app", app)
    assert _layers(env, "LD_LIBRARY_PATH", rt) == ["app/lib", "left/lib", "right/lib", "core/lib"]


def test_the_plugins_own_packages_shadow_and_the_fast_path_agrees(rt: Runtime) -> None:
    _plugin(rt, "core")
    app = _plugin(rt, "app", "core")
    script = "import shared_pkg, coremod, appmod; print(shared_pkg.WHO, coremod.NAME)"
    out = subprocess.run(
        [str(BIN / "plugin_wrapper"), "app", "--", sys.executable, "-c", script],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out == "app core\n"
    assert envcache.cached_variables("app") == plugin_env.variables(rt, "app", app)


def test_the_cache_follows_an_upgrade_and_an_uninstall_of_a_required_plugin(rt: Runtime) -> None:
    core = _plugin(rt, "core")
    app = _plugin(rt, "app", "core")
    wrapper = [str(BIN / "plugin_wrapper"), "app", "--", sys.executable, "-c"]
    show = "import coremod; print(coremod.NAME)"
    assert subprocess.run([*wrapper, show], capture_output=True, text=True).stdout == "core\n"
    # An upgrade swaps in a new tree: a new directory at the same path.
    new = rt.plugins / ".new-core"
    shutil.copytree(core, new, symlinks=True)
    (new / "lib" / "coremod.py").write_text("NAME = 'core 2'\n")
    os.rename(core, rt.plugins / ".old-core")
    os.rename(new, core)
    assert subprocess.run([*wrapper, show], capture_output=True, text=True).stdout == "core 2\n"
    assert envcache.cached_variables("app") is not None  # warm again
    shutil.rmtree(core)
    env = plugin_env.variables(rt, "app", app)
    assert _layers(env, "PATH", rt) == ["app/bin", "app/local/bin"]
    assert envcache.cached_variables("app") == env


def test_the_cache_follows_the_plugins_own_virtualenv_being_built(rt: Runtime) -> None:
    """An env computed before `local/` is filled (an install runs its crontab check first)
    must not keep the required plugins' packages ahead of the plugin's own."""
    _plugin(rt, "core")
    app = _plugin(rt, "app", "core")
    shutil.rmtree(app / "local" / "lib")
    first = plugin_env.variables(rt, "app", app)
    assert _layers(first, "PYTHONPATH", rt) == ["app/lib", "core/lib", f"core/{SITE}"]
    (app / SITE).mkdir(parents=True)
    again = plugin_env.variables(rt, "app", app)
    assert _layers(again, "PYTHONPATH", rt) == [
        "app/lib",
        f"app/{SITE}",
        "core/lib",
        f"core/{SITE}",
    ]
    assert envcache.cached_variables("app") == again
