"""The direct installer: a wheelhouse installed into a virtualenv with no pip run, through
a runtime-wide store of hard-linked files, laid out exactly as pip lays it out."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.wheels import make_wheel
from toolchain.core.errors import VenvError
from toolchain.localenv import bytecode, venv, wheels

SITE = "lib/python3.11/site-packages"


def _requirements(path: Path, *files: Path) -> Path:
    from packaging.utils import parse_wheel_filename

    lines = []
    for wheel in files:
        name, version, _b, _t = parse_wheel_filename(wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
    path.write_text("# frozen\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def house(tmp_path: Path) -> tuple[Path, Path]:
    """A wheelhouse (a package with a console script, a package that needs it, a payload)
    and its hashed requirements."""
    d = tmp_path / "house"
    d.mkdir()
    built = [
        make_wheel(d, "alpha", "2.0", scripts={"alpha": "alpha:main"}),
        make_wheel(d, "beta", "1.0", requires=["alpha>=1.0"]),
        make_wheel(d, "gamma", "1.0", payload=b"x" * 200_000),
    ]
    return d, _requirements(tmp_path / "requirements3.txt", *built)


def _files(root: Path) -> set[str]:
    """The files of a virtualenv but pip's own (seeded by virtualenv in a pip-built one,
    installed from the wheel store in ours: compiled there, not by virtualenv)."""
    pip = (f"{SITE}/pip/", f"{SITE}/pip-", "bin/pip")
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}
    return {rel for rel in found if not rel.startswith(pip)}


def _pip(env: Path, *args: str) -> str:
    argv = [env / "bin" / "python", "-m", "pip", *args, "--disable-pip-version-check"]
    pip_env = {**os.environ, "PIP_NO_INDEX": "1"}
    out = subprocess.run(argv, capture_output=True, text=True, env=pip_env)
    return out.stdout


def test_the_same_files_as_pip_and_pip_agrees(tmp_path: Path, house: tuple[Path, Path]) -> None:
    directory, requirements = house
    store = tmp_path / "store"
    venv.build(tmp_path / "pip", requirements, find_links=[directory], offline=True)
    venv.build(tmp_path / "ours", requirements, find_links=[directory], offline=True, store=store)
    assert _files(tmp_path / "ours") == _files(tmp_path / "pip")
    assert any(rel.endswith(".pyc") for rel in _files(tmp_path / "ours"))
    for listing in (("list", "--format=freeze"), ("check",)):
        assert _pip(tmp_path / "ours", *listing) == _pip(tmp_path / "pip", *listing)
    assert _pip(tmp_path / "ours", "check").startswith("No broken requirements")
    out = subprocess.run([tmp_path / "ours" / "bin" / "alpha"], capture_output=True, text=True)
    assert out.stdout == "alpha 2.0\n"
    # RECORD as pip writes it: every installed file, bytecode included, with hashes.
    record = tmp_path / "ours" / SITE / "alpha-2.0.dist-info" / "RECORD"
    rows = {r[0]: r for r in csv.reader(io.StringIO(record.read_text()))}
    pyc = "alpha/__pycache__/__init__.cpython-311.pyc"
    assert rows[pyc][1].startswith("sha256=") and rows["../../../bin/alpha"][1]
    assert (tmp_path / "ours" / SITE / "alpha-2.0.dist-info" / "INSTALLER").read_text() == "pip\n"


def test_a_second_venv_links_the_stored_files(tmp_path: Path, house: tuple[Path, Path]) -> None:
    directory, requirements = house
    store = tmp_path / "store"
    one, two = tmp_path / "one", tmp_path / "two"
    venv.build(one, requirements, find_links=[directory], offline=True, store=store)
    venv.build(two, requirements, find_links=[directory], offline=True, store=store)
    payload = f"{SITE}/gamma/__init__.py"
    assert os.stat(one / payload).st_ino == os.stat(two / payload).st_ino
    assert os.stat(one / payload).st_nlink == 3  # the store, one, two
    # pip run inside one plugin's env replaces files: the other keeps its own.
    before = (two / payload).read_bytes()
    d2 = tmp_path / "newer"
    d2.mkdir()
    make_wheel(d2, "gamma", "2.0", payload=b"y" * 10)
    subprocess.run([one / "bin" / "python", "-m", "pip", "install", "-q", "--no-index",
                    "--find-links", d2, "gamma==2.0"], check=True)  # fmt: skip
    assert (two / payload).read_bytes() == before
    assert _pip(two, "list", "--format=freeze").count("gamma==1.0") == 1
    # The store keeps an entry while a venv links it, and drops it after.
    assert wheels.collect(store) == []
    venv.remove(two)
    gone = wheels.collect(store)
    assert len(gone) == 1  # gamma 1.0: only `two` still linked it
    assert len(list(store.iterdir())) == 3  # alpha, beta and pip stay: `one` links them


def test_parallel_bytecode_is_the_serial_bytecode(tmp_path: Path, house: tuple[Path, Path]) -> None:
    import shutil
    import zipfile

    directory, _ = house
    root = tmp_path / "tree"
    for wheel in sorted(directory.glob("*.whl")):
        zipfile.ZipFile(wheel).extractall(root)
    compiled = []
    for workers in (1, 4):
        for cache in list(root.rglob("__pycache__")):
            shutil.rmtree(cache)
        bytecode.compile_tree(root, workers)
        compiled.append({p.relative_to(root): p.read_bytes() for p in root.rglob("*.pyc")})
    assert compiled[0] and compiled[0] == compiled[1]


def test_a_wheel_not_matching_its_pinned_hash_is_refused(
    tmp_path: Path, house: tuple[Path, Path]
) -> None:
    directory, requirements = house
    text = requirements.read_text()
    requirements.write_text(text.replace("--hash=sha256:", "--hash=sha256:0", 1))
    with pytest.raises(VenvError, match=r"alpha==2\.0: no wheel with a pinned hash"):
        venv.build(tmp_path / "env", requirements, find_links=[directory], offline=True,
                   store=tmp_path / "store")  # fmt: skip
    assert not (tmp_path / "env").exists()


def _wide_wheel(directory: Path, modules: int) -> Path:
    """A wheel of one package with many modules (enough for the compiling pool)."""
    import base64
    import zipfile

    files = {f"wide/m{i}.py": f"VALUE = {i}\n".encode() for i in range(modules)}
    files["wide/__init__.py"] = b""
    files["wide-1.0.dist-info/METADATA"] = b"Metadata-Version: 2.1\nName: wide\nVersion: 1.0\n"
    files["wide-1.0.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    rows = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(data)}")
    rows.append("wide-1.0.dist-info/RECORD,,")
    path = directory / "wide-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("wide-1.0.dist-info/RECORD", "\n".join(rows) + "\n")
    return path


def test_a_large_wheel_is_compiled_by_the_pool_as_pip_would(tmp_path: Path) -> None:
    directory = tmp_path / "house"
    directory.mkdir()
    requirements = _requirements(tmp_path / "req.txt", _wide_wheel(directory, 120))
    venv.build(tmp_path / "pip", requirements, find_links=[directory], offline=True)
    venv.build(tmp_path / "ours", requirements, find_links=[directory], offline=True,
               store=tmp_path / "store")  # fmt: skip
    compiled = {f for f in _files(tmp_path / "ours") if f.endswith(".pyc")}
    assert len(compiled) == 121
    assert _files(tmp_path / "ours") == _files(tmp_path / "pip") | {
        f for f in _files(tmp_path / "ours") if f.startswith(f"{SITE}/pip")
    }
