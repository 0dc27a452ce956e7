"""The direct installer: a wheelhouse installed into a virtualenv with no pip run, through
a runtime-wide store of hard-linked files, laid out exactly as pip lays it out."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.wheels import make_wheel
from toolchain.core.errors import VenvError
from toolchain.localenv import bytecode, venv
from toolchain.localenv import store as wheel_store

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
        # .data/: a script and a data file, laid out by pypa/installer
        make_wheel(
            d,
            "delta",
            "1.0",
            scripts={"delta": "delta:main"},
            data={
                "scripts/delta-tool": b"#!python\nprint('tool')\n",
                "data/share/delta/README": b"delta's data\n",
            },
        ),
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


def _contents(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file but bytecode (its header holds the source's mtime), by path: its bytes
    and whether it is executable."""
    return {
        rel: ((root / rel).read_bytes(), os.access(root / rel, os.X_OK))
        for rel in _files(root)
        if not rel.endswith(".pyc")
    }


def test_the_same_files_as_pip_and_pip_agrees(tmp_path: Path, house: tuple[Path, Path]) -> None:
    directory, requirements = house
    env = tmp_path / "env"  # both built at the same path: launchers name their python
    listings = [("list", "--format=freeze"), ("check",)]
    venv.build(env, requirements, find_links=[directory], offline=True)
    pips, pip_files, pip_said = _contents(env), _files(env), [_pip(env, *a) for a in listings]
    venv.remove(env)
    venv.build(env, requirements, find_links=[directory], offline=True, store=tmp_path / "store")
    assert _files(env) == pip_files
    assert any(rel.endswith(".pyc") for rel in _files(env))
    # The same bytes as pip: RECORD (sorted, bytecode rows without hashes), INSTALLER,
    # REQUESTED, the entry points' launchers and `.data/` scripts, the data files.
    ours = _contents(env)
    assert f"{SITE}/delta-1.0.dist-info/RECORD" in ours and "share/delta/README" in ours
    assert ours == pips
    assert [_pip(env, *a) for a in listings] == pip_said
    assert pip_said[1].startswith("No broken requirements")
    for script, said in (("alpha", "alpha 2.0\n"), ("delta-tool", "tool\n")):
        out = subprocess.run([env / "bin" / script], capture_output=True, text=True)
        assert out.stdout == said
    assert (env / SITE / "alpha-2.0.dist-info" / "INSTALLER").read_text() == "pip\n"


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
    assert wheel_store.collect(store) == []
    venv.remove(two)
    gone = wheel_store.collect(store)
    assert len(gone) == 1  # gamma 1.0: only `two` still linked it
    assert len(list(store.iterdir())) == 4  # alpha, beta, delta and pip: `one` links them


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


def test_uv_backend_installs_from_the_same_store_without_pip(
    tmp_path: Path, house: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, requirements = house
    store = tmp_path / "store"
    venv.build(tmp_path / "pip", requirements, find_links=[directory], offline=True, store=store)
    monkeypatch.setenv("PLUGIN_BACKEND", "uv")
    env = tmp_path / "uv"
    venv.build(env, requirements, find_links=[directory], offline=True, store=store)
    payload = f"{SITE}/gamma/__init__.py"
    assert os.stat(env / payload).st_ino == os.stat(tmp_path / "pip" / payload).st_ino
    assert not (env / "bin" / "pip").exists()  # uv's virtualenvs hold no pip
    assert (env / SITE / "alpha-2.0.dist-info" / "INSTALLER").read_text() == "uv\n"
    out = subprocess.run([env / "bin" / "alpha"], capture_output=True, text=True)
    assert out.stdout == "alpha 2.0\n"


def test_a_launcher_works_from_a_path_longer_than_a_shebang(
    tmp_path: Path, house: tuple[Path, Path]
) -> None:
    directory, requirements = house
    env = tmp_path / ("d" * 60) / ("e" * 60) / "env"  # more than the kernel's 127 bytes
    venv.build(env, requirements, find_links=[directory], offline=True, store=tmp_path / "s")
    assert (env / "bin" / "alpha").read_bytes().startswith(b"#!/bin/sh\n")
    out = subprocess.run([env / "bin" / "alpha"], capture_output=True, text=True)
    assert out.stdout == "alpha 2.0\n"


def test_an_entry_point_naming_another_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "house"
    bad = make_wheel(directory, "evil", "1.0", scripts={"../../escaped": "evil:main"})
    requirements = _requirements(tmp_path / "req.txt", bad)
    with pytest.raises(VenvError, match=r"evil-1\.0-py3-none-any\.whl: cannot install it: "):
        venv.build(tmp_path / "env", requirements, find_links=[directory], offline=True,
                   store=tmp_path / "store")  # fmt: skip
    assert not (tmp_path / "env").exists() and not (tmp_path / "escaped").exists()


def test_a_wheel_that_does_not_unpack_leaves_no_entry(tmp_path: Path) -> None:
    import zipfile

    directory = tmp_path / "house"
    wheel = make_wheel(directory, "broken", "1.0", payload=b"z" * 5000)
    data = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo("broken/__init__.py")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 100] ^= 0xFF  # the member's bytes no longer match its CRC
    wheel.write_bytes(bytes(data))
    requirements = _requirements(tmp_path / "req.txt", wheel)  # pinned as it is now
    with pytest.raises(
        VenvError, match=r"broken-1\.0-py3-none-any\.whl: cannot unpack it into the wheel store: "
    ):
        venv.build(tmp_path / "env", requirements, find_links=[directory], offline=True,
                   store=tmp_path / "store")  # fmt: skip
    assert not (tmp_path / "env").exists()
    assert [p.name for p in (tmp_path / "store").iterdir()] == []  # no entry, no scratch
