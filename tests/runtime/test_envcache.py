"""plugin_wrapper's fast path: the env from the cache equals the one plugin_env computes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolchain.core import settings
from toolchain.core.layout import Runtime, runtime_home
from toolchain.runtime import envcache, plugin_env

CONFIG = """\
[general]
name = web
_version = 1.0
_add_plugin_dir_to_python_path = 1

[custom]
greeting = hello
"""


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    runtime = Runtime.current()
    plugin = runtime.plugin("web")
    (plugin / "bin").mkdir(parents=True)
    (plugin / "local" / "bin").mkdir(parents=True)
    (plugin / "config.ini").write_text(CONFIG)
    return runtime


def test_runtime_home_and_module_name_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    home = Path("~").expanduser()
    for value, expected in (
        ("rel/./home", tmp_path / "rel" / "home"),
        ("/abs//home/", Path("/abs/home")),
        ("~/x", home / "x"),
    ):
        monkeypatch.setenv("PLUGIN_RUNTIME_HOME", value)
        assert settings.runtime_home() == str(runtime_home()) == str(expected)
    monkeypatch.delenv("PLUGIN_RUNTIME_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert str(runtime_home()) == str(tmp_path / "data" / "plugin-runtime")
    monkeypatch.setenv("PLUGIN_MODULE", "mfdata")
    assert settings.module_name() == "mfdata"


def test_fast_env_equals_the_computed_one(rt: Runtime) -> None:
    assert envcache.cached_variables("web") is None  # cold: computed by plugin_env
    slow = plugin_env.variables(rt, "web", rt.plugin("web"))
    fast = envcache.cached_variables("web")
    assert fast == slow
    assert fast["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "hello"
    assert fast["PYTHONPATH"].split(os.pathsep)[0] == str(rt.plugin("web"))


def test_a_changed_config_or_variant_is_a_miss(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_env.variables(rt, "web", rt.plugin("web"))
    assert envcache.cached_variables("web") is not None
    monkeypatch.setenv("PLUGIN_CONFIG_NAME", "DEV")
    assert envcache.cached_variables("web") is None
    monkeypatch.delenv("PLUGIN_CONFIG_NAME")
    rt.override("web").parent.mkdir(parents=True, exist_ok=True)
    rt.override("web").write_text("[custom]\ngreeting = bye\n")
    assert envcache.cached_variables("web") is None
    env = plugin_env.variables(rt, "web", rt.plugin("web"))
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "bye"
    assert envcache.cached_variables("web") == env


def test_templated_values_and_unknown_plugins_take_the_full_path(rt: Runtime) -> None:
    assert envcache.cached_variables("nope") is None
    assert envcache.cached_variables("../web") is None
    (rt.plugin("web") / "config.ini").write_text(CONFIG + "home = {{ HOME }}/web\n")
    env = plugin_env.variables(rt, "web", rt.plugin("web"))
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_HOME"].endswith("/web")
    assert envcache.cached_variables("web") is None  # rendered at each run


def test_wrapper_fast_path_imports_nothing_but_os(rt: Runtime) -> None:
    plugin_env.variables(rt, "web", rt.plugin("web"))
    code = textwrap.dedent(
        """
        import os, sys
        from toolchain.cli import wrapper
        def show(file, args, env):
            heavy = ["argparse", "json", "pathlib", "typing", "dataclasses", "re",
                     "toolchain.core.layout", "toolchain.runtime.plugin_env",
                     "toolchain.config.layers"]
            print(sorted(m for m in heavy if m in sys.modules))
            print(env["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"])
            sys.exit(0)
        os.execvpe = show
        wrapper.plugin_wrapper_main(["web", "--", "true"])
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\nhello\n"
