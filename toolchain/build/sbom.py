"""The bill of materials of a release: a CycloneDX 1.5 JSON document
(`.release/sbom.cdx.json`) of the Python packages in its wheelhouse and the Node.js
packages of its `package-lock.json`.

Each component has its package URL, its hashes (the wheel's sha256; npm's integrity) and
its license where the package says one (PEP 639's License-Expression, else the License
field's first line or the license classifiers). The document is reproducible like the
rest of the release: no clock, and a serial number derived from its content.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from toolchain.artifact import spec
from toolchain.core.errors import ReleaseError

SPEC_VERSION = "1.5"


def _wheel_metadata(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8", "replace")
    headers = HeaderParser().parsestr(text, headersonly=True)
    return {
        "name": headers.get("Name", ""),
        "version": headers.get("Version", ""),
        "expression": headers.get("License-Expression"),
        "license": headers.get("License"),
        "classifiers": headers.get_all("Classifier") or [],
    }


def _licenses(meta: dict[str, Any]) -> list[dict[str, Any]]:
    if meta["expression"]:
        return [{"expression": meta["expression"].strip()}]
    names = [c.split(" :: ")[-1] for c in meta["classifiers"] if c.startswith("License ::")]
    names = [n for n in names if n not in ("OSI Approved", "Other/Proprietary License")]
    if not names and meta["license"] and meta["license"].strip():
        names = [meta["license"].strip().splitlines()[0][:200]]
    return [{"license": {"name": name}} for name in names]


def python_components(wheels: list[Path]) -> list[dict[str, Any]]:
    """A component for each wheel."""
    from packaging.utils import canonicalize_name

    components = []
    for wheel in sorted(wheels):
        meta = _wheel_metadata(wheel)
        purl = f"pkg:pypi/{canonicalize_name(meta['name'])}@{meta['version']}"
        component = {
            "type": "library",
            "bom-ref": f"{purl}#{wheel.name}",  # one per wheel: a release may have several
            "name": meta["name"],
            "version": meta["version"],
            "purl": purl,
            "hashes": [{"alg": "SHA-256", "content": spec.sha256_file(wheel)}],
        }
        if licenses := _licenses(meta):
            component["licenses"] = licenses
        components.append(component)
    return components


def node_components(lock: Path) -> list[dict[str, Any]]:
    """A component for each package of an npm `package-lock.json` (v2 or v3)."""
    if not lock.is_file():
        return []
    try:
        doc = json.loads(lock.read_text(encoding="utf-8"))
        packages = dict(doc.get("packages", {}))
    except (ValueError, TypeError, AttributeError):
        raise ReleaseError(f"{lock}: not an npm lock file (v2 or v3); run `make` again") from None
    components = []
    for key, entry in sorted(packages.items()):
        if not key or not isinstance(entry, dict) or entry.get("link"):
            continue  # the project itself, or a link into it
        name = entry.get("name") or key.rpartition("node_modules/")[2]
        version = str(entry.get("version", ""))
        scope, _sep, base = name.rpartition("/")
        purl = f"pkg:npm/{scope.replace('@', '%40') + '/' if scope else ''}{base}@{version}"
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": f"{purl}#{key}",
            "name": name,
            "version": version,
            "purl": purl,
        }
        algorithm, _sep, digest = str(entry.get("integrity", "")).partition("-")
        if algorithm in ("sha512", "sha384", "sha256") and digest:
            try:
                content = base64.b64decode(digest, validate=True).hex()
            except binascii.Error:
                raise ReleaseError(f"{lock}: {key}: integrity {digest!r} is not base64") from None
            component["hashes"] = [{"alg": f"SHA-{algorithm[3:]}", "content": content}]
        if isinstance(entry.get("license"), str) and entry["license"]:
            component["licenses"] = [{"expression": entry["license"]}]
        components.append(component)
    return components


def _version() -> str:
    """This toolchain's version, as installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plugin-toolchain")
    except PackageNotFoundError:
        return "unknown"


def document(metadata: dict[str, Any], wheels: list[Path], lock: Path) -> bytes:
    """The CycloneDX JSON document of a release (canonical, reproducible bytes)."""
    components = python_components(wheels) + node_components(lock)
    name, version = str(metadata["name"]), str(metadata["version"])
    body = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": metadata["build_date"],
            "tools": {
                "components": [
                    {"type": "application", "name": "plugin-toolchain", "version": _version()}
                ]
            },
            "component": {
                "type": "application",
                "bom-ref": name,
                "name": name,
                "version": f"{version}-{metadata['release']}",
            },
        },
        "components": components,
    }
    serial = uuid.uuid5(uuid.NAMESPACE_URL, spec.dumps(body).decode())
    return spec.dumps({**body, "serialNumber": f"urn:uuid:{serial}"})
