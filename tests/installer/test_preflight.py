"""`plugins.install --check`: would these files install here? Each reason a file would be
refused is reported, and nothing in the runtime changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.installer.test_dependencies import plugin as requiring
from tests.support.plugin_factory import build_plugin
from toolchain.cli.plugins import install_main
from toolchain.core.layout import Runtime


def _tree(rt: Runtime) -> list[str]:
    """The runtime's files (its empty skeleton and lock file aside)."""
    if not rt.home.exists():
        return []
    found = (p for p in rt.home.rglob("*") if not p.is_dir() and p != rt.lock)
    return sorted(str(p.relative_to(rt.home)) for p in found)


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = install_main(["--check", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def _verdicts(doc: dict[str, Any]) -> dict[str, bool]:
    rows = [*doc["checks"], *(c for f in doc["files"] for c in f["checks"])]
    return {row["check"]: row["ok"] for row in rows}


def _claiming(artifact: Path, size: int) -> Path:
    """The head of `artifact` (what --check reads) with a manifest listing one more file,
    of `size` bytes: more than any disk here holds."""
    import io
    import tarfile

    from toolchain.artifact import read, spec

    top, docs = read.read_documents(artifact)
    manifest = json.loads(docs[".release/manifest.json"])
    manifest["files"].append({"path": "big.bin", "size": size, "mode": 420, "sha256": "0" * 64})
    docs[".release/manifest.json"] = spec.dumps(manifest)
    out = artifact.with_name(f"claiming-{artifact.name}")
    with tarfile.open(out, "w:gz") as tar:
        for name in (top, f"{top}/.release"):
            tar.addfile(_dir(name))
        for rel in (".release/metadata.json", ".release/manifest.json"):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(docs[rel])
            tar.addfile(info, io.BytesIO(docs[rel]))
    return out


def _dir(name: str) -> Any:
    import tarfile

    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def test_a_file_that_would_install_says_so_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = Runtime.current()
    artifact = build_plugin(tmp_path, "hello", "1.0")
    before = _tree(rt)
    code, doc = _check(capsys, str(artifact))
    assert code == 0 and doc["ok"]
    assert _verdicts(doc) == dict.fromkeys(
        ("dependencies", "pins", "signature", "target", "name", "disk"), True
    )
    assert doc["files"][0]["checks"][0]["detail"].startswith("unsigned")
    assert _tree(rt) == before  # nothing installed, nothing staged
    capsys.readouterr()
    assert install_main(["--check", str(artifact)]) == 0
    assert f"{artifact}: ok" in capsys.readouterr().out


def test_each_reason_to_refuse_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = Runtime.current()
    assert install_main([str(build_plugin(tmp_path / "v1", "hello", "1.0"))]) == 0
    before = _tree(rt)
    # installed already (no --upgrade), another Python, more than the disk holds, unsigned
    # under require, and a dependency nowhere to be found
    other = build_plugin(tmp_path / "v2", "hello", "2.0", meta={"python_tag": "cp399"})
    huge = _claiming(build_plugin(tmp_path / "huge", "huge", "1.0"), 1 << 60)
    needy = requiring(tmp_path / "needy", "needy", "1.0", "absent>=1")
    monkeypatch.setenv("PLUGIN_SIGNATURE_POLICY", "require")
    code, doc = _check(capsys, str(other), str(huge), str(needy))
    assert code == 1 and not doc["ok"]
    by_file = {Path(f["file"]).name: {c["check"]: c for c in f["checks"]} for f in doc["files"]}
    hello = by_file[other.name]
    assert not hello["name"]["ok"] and "--upgrade" in hello["name"]["detail"]
    assert not hello["target"]["ok"] and "built for cp399" in hello["target"]["detail"]
    assert not hello["signature"]["ok"] and "not signed" in hello["signature"]["detail"]
    assert not by_file[huge.name]["disk"]["ok"]
    assert "not enough disk space" in by_file[huge.name]["disk"]["detail"]
    shared = {c["check"]: c for c in doc["checks"]}
    assert not shared["dependencies"]["ok"] and "absent" in shared["dependencies"]["detail"]
    assert _tree(rt) == before
    capsys.readouterr()
    assert install_main(["--check", str(other)]) == 1
    out, err = capsys.readouterr()
    assert "would be refused" in out and "target: NO: " in out
    assert err.strip().splitlines() == ["ERROR: would not install here (see above)"]


def test_malformed_documents_are_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import tarfile

    out = tmp_path / "odd.plugin"
    docs = {
        ".release/metadata.json": b'{"name": "odd"}\n',
        ".release/manifest.json": b'{"files": 5}\n',
    }
    with tarfile.open(out, "w:gz") as tar:
        for name in ("odd", "odd/.release"):
            tar.addfile(_dir(name))
        for rel, data in docs.items():
            info = tarfile.TarInfo(f"odd/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    code, doc = _check(capsys, str(out))
    assert code == 1
    details = [c["detail"] for c in doc["files"][0]["checks"] if not c["ok"]]
    assert details and all("Traceback" not in d for d in details)
    assert any("metadata lacks" in d or "malformed" in d for d in details)
