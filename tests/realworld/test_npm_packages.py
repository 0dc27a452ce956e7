"""A Node.js plugin with a package from the npm registry: released straight after create,
with and without `omit-lockfile-registry-resolved` in the user's .npmrc, installed
offline, run, and released again byte for byte."""

from __future__ import annotations

import base64
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.realworld.conftest import offline, run, script
from tests.support.plugin_dirs import tool_env

pytestmark = [pytest.mark.realworld, pytest.mark.slow]

EPOCH = "1700000000"


@pytest.mark.parametrize("omit_resolved", [True, False], ids=["omit-resolved", "default-npmrc"])
def test_node_plugin_released_after_create_installs_offline_and_rebuilds_identically(
    tmp_path: Path, online: Path, monkeypatch: pytest.MonkeyPatch, omit_resolved: bool
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if omit_resolved:  # a legitimate npm option, set on the machines of this project
        (home / ".npmrc").write_text("omit-lockfile-registry-resolved=true\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    run([script("bootstrap_plugin.py"), "create", "--no-input", "--template", "node", "realnode"],
        tmp_path)  # fmt: skip
    plugin = tmp_path / "realnode"
    manifest = plugin / "node_sources" / "package.json"
    doc = json.loads(manifest.read_text())
    doc["dependencies"] = {"is-number": "7.0.0"}
    manifest.write_text(json.dumps(doc, indent=2) + "\n")

    run(["make", "release"], plugin)  # straight after create: make release builds what it needs
    lock = json.loads((plugin / "node_sources" / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/is-number"]
    assert ("resolved" in entry) is not omit_resolved
    artifact = next(plugin.glob("realnode-*.plugin"))
    first = tmp_path / "first.plugin"
    shutil.copyfile(artifact, first)
    with tarfile.open(first) as tar:
        names = tar.getnames()
        cache = [m for m in tar.getmembers() if "/.release/npm-cache/" in m.name and m.isfile()]
        texts = b"".join(tar.extractfile(m).read() for m in cache)  # type: ignore[union-attr]
    assert any("/_cacache/content-v2/" in n for n in names)
    assert not any("/_logs" in n for n in names)
    assert str(tmp_path).encode() not in texts and str(home).encode() not in texts
    # The bill of materials names the registry package with npm's own integrity hash.
    sbom = json.loads(run([script("plugins.info"), "--sbom", first], tmp_path).stdout)
    npm = {c["purl"]: c for c in sbom["components"] if c["purl"].startswith("pkg:npm/")}
    assert set(npm) == {"pkg:npm/is-number@7.0.0"}, npm
    algorithm, digest = entry["integrity"].split("-", 1)
    assert (
        npm["pkg:npm/is-number@7.0.0"]["hashes"]
        == [{"alg": "SHA-512", "content": base64.b64decode(digest).hex()}]
        and algorithm == "sha512"
    )
    assert npm["pkg:npm/is-number@7.0.0"]["licenses"] == [{"expression": "MIT"}]

    runtime = tmp_path / "runtime"
    env = offline(PLUGIN_RUNTIME_HOME=str(runtime), HOME=str(home))
    run([script("plugins.install"), first], tmp_path, env)
    ran = run([script("plugin_wrapper"), "realnode", "--", "realnode"], tmp_path, env)
    assert "uses is-number 7.0.0 from " in ran.stdout, ran.stdout

    run(["make", "clean"], plugin)
    run(["make", "release"], plugin, tool_env(SOURCE_DATE_EPOCH=EPOCH, HOME=str(home)))
    assert next(plugin.glob("realnode-*.plugin")).read_bytes() == first.read_bytes()
