"""Tiny wheels made by the tests, so that pip runs offline against `--find-links`."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_wheel(
    directory: Path,
    name: str,
    version: str = "1.0",
    *,
    requires: list[str] | None = None,
    scripts: dict[str, str] | None = None,
    payload: bytes = b"",
    data: dict[str, bytes] | None = None,
) -> Path:
    """Write a pure-Python wheel for a module `name` and return its path.

    `scripts` maps console-script names to `module:function`; `payload` pads the module;
    `data` maps paths under the wheel's `.data/` directory (`scripts/x`, `data/share/y`)
    to their bytes.
    """
    dist = name.replace("-", "_")
    module = dist.lower()
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {
        f"{module}/__init__.py": (
            f"__version__ = {version!r}\n\ndef main():\n    print({name!r}, __version__)\n"
            + (f"\nPAD = {payload!r}\n" if payload else "")
        ).encode(),
    }
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires or []]
    files[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    for path, content in (data or {}).items():
        files[f"{dist}-{version}.data/{path}"] = content
    if scripts:
        lines = ["[console_scripts]"] + [f"{k} = {v}" for k, v in scripts.items()]
        files[f"{info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for path, data in files.items():
            info_ = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info_.external_attr = (0o100755 if "/scripts/" in path else 0o100644) << 16
            zf.writestr(info_, data)
    return out
