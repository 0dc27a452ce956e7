"""Releases for other targets, offline: a wheelhouse per target (pure wheels once), the
host's wheels picked at install, a missing wheel named with its target, and a release
for another Python refused here with the targets it has."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support.plugin_dirs import render_default, set_requirements
from tests.support.wheels import make_wheel
from toolchain.artifact import read
from toolchain.build import freeze, release
from toolchain.cli.build import main as build_main
from toolchain.cli.plugins import install_main
from toolchain.core import targets
from toolchain.core.errors import ReleaseError
from toolchain.core.layout import PluginDir, Runtime

X86 = "manylinux_2_17_x86_64"


def _binary(directory: Path, pure: Path, python: str) -> Path:
    """`pure` re-tagged as a binary wheel for `python` on manylinux_2_17_x86_64."""
    name, version = pure.name.split("-")[:2]
    out = directory / f"{name}-{version}-{python}-{python}-{X86}.whl"
    with zipfile.ZipFile(pure) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/WHEEL"):
                data = data.replace(b"Root-Is-Purelib: true", b"Root-Is-Purelib: false")
                data = data.replace(b"Tag: py3-none-any", f"Tag: {python}-{python}-{X86}".encode())
            dst.writestr(info, data)
    return out


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """alpha (pure) and gamma (binary: cp311 and cp312 wheels only)."""
    d = tmp_path / "index"
    make_wheel(d, "alpha", "2.0", scripts={"alpha": "alpha:main"})
    pure = make_wheel(tmp_path / "pure", "gamma", "1.0")
    for python in ("cp311", "cp312"):
        _binary(d, pure, python)
    return d


@pytest.fixture
def plugin(tmp_path: Path, index: Path) -> PluginDir:
    root = render_default(tmp_path / "src")
    set_requirements(root, index, "alpha", "gamma")
    p = PluginDir(root)
    freeze.freeze(p)
    return p


def test_target_words_and_tags() -> None:
    one, two = targets.parse("cp312-manylinux_2_17_x86_64, cp311-linux_aarch64")
    assert (str(one), one.version, one.machine) == (
        "cp312-manylinux_2_17_x86_64",
        (3, 12),
        "x86_64",
    )
    assert one.accepts(f"g-1-cp312-cp312-{X86}.whl") and one.accepts(
        "g-1-cp312-abi3-manylinux2014_x86_64.whl"
    )
    assert not one.accepts(f"g-1-cp311-cp311-{X86}.whl") and not one.accepts(
        "g-1-cp312-cp312-manylinux_2_28_x86_64.whl"
    )
    assert (
        one.accepts("six-1-py2.py3-none-any.whl")
        and two.environment()["platform_machine"] == "aarch64"
    )
    for bad in ("cp312", "cp312-win_amd64", "py3-manylinux_2_17_x86_64", "cp312-macosx_11_0_arm64"):
        with pytest.raises(ValueError, match="is not a target"):
            targets.parse(bad)


def test_one_release_for_two_pythons_installs_the_hosts_wheels(
    plugin: PluginDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("PLUGIN_TARGETS", f"cp311-{X86} cp312-{X86}")
    artifact = release.release(plugin)
    assert artifact.name == "hello-0.1.0-1.multi.plugin"
    capsys.readouterr()
    assert build_main(["-C", str(plugin.root), "artifact-name"]) == 0
    assert capsys.readouterr().out.strip() == artifact.name
    _top, meta, manifest = read.read_head(artifact)
    assert meta["targets"] == [f"cp311-{X86}", f"cp312-{X86}"] and meta["python_tag"] == "cp311"
    assert meta["target_wheels"][f"cp312-{X86}"] == [
        "alpha-2.0-py3-none-any.whl",
        f"gamma-1.0-cp312-cp312-{X86}.whl",
    ]
    bom = json.loads(read.read_member(artifact, ".release/sbom.cdx.json") or b"{}")
    refs = [c["bom-ref"] for c in bom["components"]]
    assert len(refs) == len(set(refs)) == 3  # one per wheel, gamma twice
    house = sorted(f["path"].rsplit("/", 1)[1] for f in manifest["files"]
                   if f["path"].startswith(".release/wheelhouse/"))  # fmt: skip
    assert house == [
        "alpha-2.0-py3-none-any.whl",  # pure: once for both
        f"gamma-1.0-cp311-cp311-{X86}.whl",
        f"gamma-1.0-cp312-cp312-{X86}.whl",
    ]
    assert install_main([str(artifact)]) == 0
    site = Runtime.current().plugin("hello") / "local" / "lib" / "python3.11" / "site-packages"
    wheel = (site / "gamma-1.0.dist-info" / "WHEEL").read_text()
    assert f"Tag: cp311-cp311-{X86}" in wheel  # the host's wheel, not cp312's


def test_a_pin_without_a_wheel_for_a_target_is_one_error_naming_both(
    plugin: PluginDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGIN_TARGETS", f"cp313-{X86}")
    with pytest.raises(ReleaseError, match=rf"gamma==1\.0: no wheel for target cp313-{X86} "):
        release.release(plugin)
    monkeypatch.setenv("PLUGIN_TARGETS", "cp313-windows")
    with pytest.raises(ReleaseError, match="PLUGIN_TARGETS: 'cp313-windows' is not a target"):
        release.release(plugin)


def test_a_release_for_another_python_is_refused_here_naming_its_targets(
    plugin: PluginDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = plugin.root / "config.ini"
    config.write_text(
        config.read_text().replace("[general]", f"[general]\n_targets = cp312-{X86}", 1)
    )
    monkeypatch.setenv("PLUGIN_TARGETS", "")
    artifact = release.release(plugin)  # the config's _targets
    assert artifact.name == f"hello-0.1.0-1.cp312-{X86}.plugin"
    capsys.readouterr()
    assert install_main([str(artifact)]) == 1
    err = capsys.readouterr().err
    assert f"built for cp312-{X86}; this host is cp311-" in err
    # make release names the file the same way (the fast path steps aside for targets)
    shutil.rmtree(plugin.root / ".wheelhouse-targets")
    done = subprocess.run(["make", "-s", "-C", plugin.root, "release"], capture_output=True,
                          text=True, env=_tool_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (plugin.root / f"hello-0.1.0-1.cp312-{X86}.plugin").is_file()


def _tool_env() -> dict[str, str]:
    from tests.support.plugin_dirs import tool_env

    return tool_env()


def test_a_dependency_only_another_python_needs_is_one_error(
    tmp_path: Path, index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_wheel(index, "delta", "1.0", requires=['epsilon>=1; python_version >= "3.12"'])
    make_wheel(index, "epsilon", "1.0")
    root = render_default(tmp_path / "needs")
    set_requirements(root, index, "delta")
    plugin = PluginDir(root)
    freeze.freeze(plugin)  # on 3.11: no epsilon
    monkeypatch.setenv("PLUGIN_TARGETS", f"cp312-{X86}")
    with pytest.raises(
        ReleaseError,
        match=rf"delta==1\.0 requires epsilon>=1; .* on cp312-{X86}; "
        "the pins .* have none: add it to requirements-to-freeze.txt",
    ):
        release.release(plugin)
    monkeypatch.setenv("PLUGIN_TARGETS", f"cp311-{X86}")
    assert release.release(plugin).is_file()  # on 3.11 it is not needed
