"""A plugin with an sdist-only dependency (docopt) and a binary-wheel one (MarkupSafe),
frozen and released against PyPI, installed offline and run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.realworld.conftest import offline, run, script
from tests.support.plugin_dirs import tool_env

pytestmark = [pytest.mark.realworld, pytest.mark.slow]

REQUIREMENTS = "docopt==0.6.2\nmarkupsafe==3.0.2\n"


def pinned_hashes(plugin: Path, name: str) -> set[str]:
    text = (plugin / "python3_virtualenv_sources" / "requirements3.txt").read_text()
    block = re.search(rf"^{name}==.*?(?=^\S|\Z)", text, re.M | re.S)
    assert block, text
    return set(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block.group(0)))


@pytest.mark.parametrize(
    ("backend", "fresh_cache"),
    [("pip", False), ("uv", True)],
    ids=["pip-shared-cache", "uv-fresh-cache"],
)
def test_sdist_only_and_binary_wheel_release_and_offline_install(
    tmp_path: Path, online: Path, monkeypatch: pytest.MonkeyPatch, backend: str, fresh_cache: bool
) -> None:
    monkeypatch.setenv("PLUGIN_BACKEND", backend)
    if fresh_cache:
        monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    run([script("bootstrap_plugin.py"), "create", "--no-input", "realpy"], tmp_path)
    plugin = tmp_path / "realpy"
    (plugin / "python3_virtualenv_sources" / "requirements-to-freeze.txt").write_text(REQUIREMENTS)
    # `make` builds docopt's wheel for local/ first: pip's cache then holds it, and the
    # release must still prove it comes from the pinned sdist.
    run(["make"], plugin)
    run(["make", "release"], plugin)
    artifact = next(plugin.glob("realpy-0.1.0-1.*.plugin"))
    info = json.loads(run([script("plugins.info"), "--json", artifact], plugin).stdout)
    built = info["metadata"]["wheels_built_from_sdists"]
    assert [(b["sdist"], b["wheel"]) for b in built] == [
        ("docopt-0.6.2.tar.gz", "docopt-0.6.2-py2.py3-none-any.whl")
    ]
    assert built[0]["sha256"] in pinned_hashes(plugin, "docopt")
    wheels = {f["path"] for f in info["files"] if f["path"].endswith(".whl")}
    assert any(w.startswith(".release/wheelhouse/MarkupSafe-3.0.2-cp") for w in wheels), wheels

    home = tmp_path / "runtime"
    env = offline(PLUGIN_RUNTIME_HOME=str(home), PLUGIN_BACKEND=backend)
    run([script("plugins.install"), artifact], tmp_path, env)
    code = "import docopt, markupsafe; print(docopt.__version__, markupsafe.escape('<'))"
    ran = run([script("plugin_wrapper"), "realpy", "--", "python", "-c", code], tmp_path, env)
    assert ran.stdout.split() == ["0.6.2", "&lt;"]


def test_a_file_that_differs_from_its_pinned_hash_is_one_error_saying_what_to_do(
    tmp_path: Path, online: Path
) -> None:
    run([script("bootstrap_plugin.py"), "create", "--no-input", "tampered"], tmp_path)
    plugin = tmp_path / "tampered"
    sources = plugin / "python3_virtualenv_sources"
    (sources / "requirements-to-freeze.txt").write_text("docopt==0.6.2\n")
    run(["plugin-build", "freeze"], plugin)
    pins = sources / "requirements3.txt"
    pins.write_text(re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, pins.read_text()))
    proc = run(["make", "release"], plugin, tool_env(), ok=False)
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr
    assert "cannot build the wheelhouse" in errors[0] and "make superclean all" in errors[0]
    assert not list(plugin.glob("*.plugin"))
