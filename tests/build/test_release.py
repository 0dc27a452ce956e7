"""`make release` core: wheelhouse, golden file set, manifest, byte-identical rebuilds."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements
from toolchain.artifact import read, spec
from toolchain.build import freeze, release, wheelhouse
from toolchain.cli.build import main as build_main
from toolchain.core.errors import ReleaseError
from toolchain.core.layout import PluginDir

GOLDEN = [
    "hello/",
    "hello/.release/",
    "hello/.release/metadata.json",
    "hello/.release/manifest.json",
    "hello/.autorestart_excludes",
    "hello/.autorestart_includes",
    "hello/.plugin_format_version",
    "hello/.release/sbom.cdx.json",
    "hello/.release/wheelhouse/",
    "hello/.release/wheelhouse/alpha-2.0-py3-none-any.whl",
    "hello/.release/wheelhouse/beta-1.0-py3-none-any.whl",
    "hello/.releaseignore",
    "hello/Makefile",
    "hello/README.md",
    "hello/bin/",
    "hello/bin/hello",
    "hello/config.ini",
    "hello/crontab",
    "hello/postinstall",
    "hello/python3_virtualenv_sources/",
    "hello/python3_virtualenv_sources/allow_binary_packages",
    "hello/python3_virtualenv_sources/requirements-to-freeze.txt",
    "hello/python3_virtualenv_sources/requirements3.txt",
]


@pytest.fixture
def plugin(tmp_path: Path, wheels: Path) -> PluginDir:
    root = render_default(tmp_path / "src")
    set_requirements(root, wheels, "beta")
    p = PluginDir(root)
    freeze.freeze(p)
    # Generated things that must never be packed.
    (root / "local" / "bin").mkdir(parents=True)
    (root / "local" / "bin" / "python").write_text("x")
    (root / "bin" / "__pycache__").mkdir()
    (root / "bin" / "__pycache__" / "x.pyc").write_text("x")
    (root / "old-0.1-1.linux_x86_64.plugin").write_text("x")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / ".gitignore").write_text("x")  # ignored by the template's .releaseignore
    return p


def _names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]


def test_golden_file_set_metadata_and_manifest(plugin: PluginDir, tmp_path: Path) -> None:
    out = release.release(plugin)
    assert out.name == f"hello-0.1.0-1.{spec.platform_tag()}.plugin"
    assert out.parent == plugin.root
    assert _names(out) == GOLDEN
    top, meta, manifest = read.read_head(out)
    assert top == "hello"
    assert {k: meta[k] for k in ("name", "version", "release", "requires", "format_version")} == {
        "name": "hello",
        "version": "0.1.0",
        "release": "1",
        "requires": [],
        "format_version": 1,
    }
    assert meta["python_tag"] == spec.python_tag()
    assert meta["platform"] == spec.platform_tag()
    for key in ("summary", "license", "url", "maintainer", "vendor", "build_host", "build_date"):
        assert meta[key]
    # The manifest lists every file with its real size, mode and sha256.
    with tarfile.open(out) as tar:
        members = {m.name.partition("/")[2]: m for m in tar.getmembers() if m.isfile()}
        files = {f["path"]: f for f in manifest["files"]}
        assert set(files) == set(members) - {".release/manifest.json"}
        for path, entry in files.items():
            handle = tar.extractfile(members[path])
            assert handle is not None
            data = handle.read()
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert entry["size"] == len(data)
            assert int(entry["mode"], 8) == members[path].mode
    assert files["bin/hello"]["mode"] == "755"
    assert files["config.ini"]["mode"] == "644"
    assert meta["size"] == sum(f["size"] for f in manifest["files"] if "metadata" not in f["path"])
    # Wheels are the ones pinned, with the pinned hashes.
    pins = {p.name: p for p in freeze.read_pins(plugin.req_out)}
    for name in ("alpha", "beta"):
        wheel = next(f for f in files if f.startswith(f".release/wheelhouse/{name}-"))
        assert "sha256:" + files[wheel]["sha256"] in pins[name].hashes


def test_rebuild_is_byte_identical(
    plugin: PluginDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = release.release(plugin, tmp_path / "one.plugin")
    (plugin.root / "config.ini").touch()  # mtimes do not matter
    second = release.release(plugin, tmp_path / "two.plugin")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in tar.getmembers()} == {
            (1700000000, 0, 0, "")
        }
    assert read.read_head(first)[1]["build_date"] == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    third = release.release(plugin, tmp_path / "three.plugin")
    assert third.read_bytes() != first.read_bytes()


def test_wheelhouse_is_reused_until_pins_change(plugin: PluginDir, wheels: Path) -> None:
    house = wheelhouse.build_wheelhouse(plugin)
    stamp = (house / ".stamp").read_text()
    (house / "marker").write_text("kept")
    wheelhouse.build_wheelhouse(plugin)
    assert (house / "marker").exists()
    set_requirements(plugin.root, wheels, "gamma")
    freeze.freeze(plugin)
    wheelhouse.build_wheelhouse(plugin)
    assert not (house / "marker").exists()
    assert (house / ".stamp").read_text() != stamp
    assert sorted(p.name for p in house.glob("*.whl")) == ["gamma-1.0-py3-none-any.whl"]


def test_tampered_wheel_fails_the_release(
    plugin: PluginDir, tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Freeze against a wheel, then swap it for another file of the same name.
    local = tmp_path / "own-wheels"
    local.mkdir()
    (local / "alpha-2.0-py3-none-any.whl").write_bytes(
        (wheels / "alpha-2.0-py3-none-any.whl").read_bytes()
    )
    set_requirements(plugin.root, local, "alpha")
    freeze.freeze(plugin)
    (local / "alpha-2.0-py3-none-any.whl").write_bytes(
        (wheels / "alpha-1.0-py3-none-any.whl").read_bytes()
    )
    assert build_main(["-C", str(plugin.root), "release"]) == 1
    err = capsys.readouterr().err
    assert "cannot build the wheelhouse" in err and "Expected sha256" in err
    assert not list(plugin.root.glob("hello-*.plugin"))


def test_wheelhouse_check_names_missing_and_unpinned(tmp_path: Path, wheels: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    (house / "gamma-1.0-py3-none-any.whl").write_bytes(
        (wheels / "gamma-1.0-py3-none-any.whl").read_bytes()
    )
    pin = freeze.Pin("alpha", "2.0", frozenset({"sha256:00"}))
    with pytest.raises(ReleaseError, match=r"gamma-1\.0-py3-none-any\.whl: not pinned"):
        wheelhouse.check_wheelhouse(house, [pin], tmp_path / "r.txt")
    (house / "gamma-1.0-py3-none-any.whl").unlink()
    with pytest.raises(ReleaseError, match="no wheel for alpha"):
        wheelhouse.check_wheelhouse(house, [pin], tmp_path / "r.txt")


def test_a_wheel_built_from_a_pinned_sdist_is_vouched_for_by_the_sdist(
    tmp_path: Path, wheels: Path
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    wheel = house / "gamma-1.0-py3-none-any.whl"
    wheel.write_bytes((wheels / "gamma-1.0-py3-none-any.whl").read_bytes())
    pin = freeze.Pin("gamma", "1.0", frozenset({"sha256:" + "a" * 64}))
    with pytest.raises(ReleaseError, match="its sha256 is not among the hashes pinned"):
        wheelhouse.check_wheelhouse(house, [pin], tmp_path / "r.txt")
    record = [{"wheel": wheel.name, "sdist": "gamma-1.0.tar.gz", "sha256": "sha256:" + "a" * 64}]
    (house / wheelhouse.BUILT_RECORD).write_text(json.dumps(record))
    wheelhouse.check_wheelhouse(house, [pin], tmp_path / "r.txt")
    record[0]["sha256"] = "sha256:" + "b" * 64
    (house / wheelhouse.BUILT_RECORD).write_text(json.dumps(record))
    with pytest.raises(ReleaseError, match=r"the sdist it was built from \(gamma-1\.0\.tar\.gz\)"):
        wheelhouse.check_wheelhouse(house, [pin], tmp_path / "r.txt")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("_version = 0.1.0", "_version = not-a-version"), "[general] _version: 'not-a-version'"),
        (("name = hello", "name = plugin_hello"), "[general] name: invalid plugin name"),
        (("name = hello\n", ""), "[general] missing required key 'name'"),
        (("[custom]", "[custom]\n[mystery]"), "unknown section [mystery]"),
    ],
)
def test_invalid_config_fails_release_in_one_line(
    plugin: PluginDir, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], expected: str
) -> None:
    text = plugin.config.read_text()
    assert edit[0] in text
    plugin.config.write_text(text.replace(edit[0], edit[1], 1))
    assert build_main(["-C", str(plugin.root), "release"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"ERROR: {plugin.config}: ") and expected in err
    assert not list(plugin.root.glob("hello-*.plugin"))


def test_release_outside_a_plugin_dir_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build_main(["-C", str(tmp_path), "release"]) == 2
    assert "no config.ini here" in capsys.readouterr().err


def test_a_fifo_in_the_plugin_fails_the_release(
    plugin: PluginDir, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(plugin.root / "bin" / "pipe")
    assert build_main(["-C", str(plugin.root), "release"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ERROR: {plugin.root / 'bin' / 'pipe'}: not a regular file")
    assert not list(plugin.root.glob("hello-*.plugin"))
