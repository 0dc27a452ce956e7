"""The release's CycloneDX bill of materials: valid against the CycloneDX 1.5 schema,
complete, reproducible, and printed by `plugins.info --sbom` for a file and an install."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements
from toolchain.artifact import read
from toolchain.build import freeze, release
from toolchain.cli.plugins import info_main, install_main
from toolchain.core.layout import SBOM, PluginDir

INTEGRITY = "sha512-" + base64.b64encode(hashlib.sha512(b"left-pad").digest()).decode()
LOCK = {
    "name": "hello",
    "lockfileVersion": 3,
    "requires": True,
    "packages": {
        "": {"name": "hello", "dependencies": {"left-pad": "1.3.0", "@types/node": "20.1.0"}},
        "node_modules/left-pad": {
            "version": "1.3.0",
            "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",
            "integrity": INTEGRITY,
            "license": "WTFPL",
        },
        "node_modules/@types/node": {"version": "20.1.0", "license": "MIT"},
    },
}


def test_the_bill_of_materials_is_valid_complete_and_reproducible(
    tmp_path: Path,
    wheels: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    root = render_default(tmp_path / "src")
    set_requirements(root, wheels, "beta")
    plugin = PluginDir(root)
    freeze.freeze(plugin)
    (root / "node_sources").mkdir(exist_ok=True)
    (root / "node_sources" / "package-lock.json").write_text(json.dumps(LOCK))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    artifact = release.release(plugin, tmp_path / "one.plugin")
    data = read.read_member(artifact, SBOM)
    assert data is not None
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(data.decode())
    assert errors is None, errors
    bom = json.loads(data)
    by_purl = {c["purl"]: c for c in bom["components"]}
    assert set(by_purl) == {
        "pkg:pypi/alpha@2.0",
        "pkg:pypi/beta@1.0",
        "pkg:npm/left-pad@1.3.0",
        "pkg:npm/%40types/node@20.1.0",
    }
    manifest = {f["path"]: f["sha256"] for f in read.read_head(artifact)[2]["files"]}
    alpha = next(p for p in manifest if p.startswith(".release/wheelhouse/alpha-"))
    assert by_purl["pkg:pypi/alpha@2.0"]["hashes"] == [
        {"alg": "SHA-256", "content": manifest[alpha]}
    ]
    left_pad = by_purl["pkg:npm/left-pad@1.3.0"]
    assert left_pad["hashes"][0] == {
        "alg": "SHA-512",
        "content": hashlib.sha512(b"left-pad").hexdigest(),
    }
    assert left_pad["licenses"] == [{"expression": "WTFPL"}]
    assert bom["metadata"]["component"]["name"] == "hello"
    assert SBOM in manifest  # covered by the manifest, so by a signature too
    # reproducible: the same bytes again, no clock in it
    again = release.release(plugin, tmp_path / "two.plugin")
    assert read.read_member(again, SBOM) == data
    # printed for the file and for the installed plugin
    capsys.readouterr()
    assert info_main(["--sbom", str(artifact)]) == 0
    assert capsys.readouterr().out == data.decode()
    assert install_main([str(artifact)]) == 0
    capsys.readouterr()
    assert info_main(["--sbom", "hello"]) == 0
    assert json.loads(capsys.readouterr().out) == bom
