"""The runtime override file of a plugin (`config/plugins/NAME.ini`), generated once."""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.config import layers, schema
from toolchain.core.layout import CONFIG_INI, Runtime


def template(raw: schema.Raw, name: str) -> str:
    """The runtime override file of a plugin: every overridable key, commented out."""
    out = [
        f"# Runtime override of plugin {name}: merged over its {CONFIG_INI}, under the",
        "# provisioning override. Uncomment a key to change its value. Keys starting with",
        "# '_' are private and cannot be overridden.",
    ]
    for section, keys in raw.items():
        lines = [
            f"# {key} = " + value.replace("\n", "\n#     ")
            for key, value in keys.items()
            if not key.startswith("_") and not (section == "general" and key == "name")
        ]
        if lines:
            out += ["", f"[{section}]", *lines]
    return "\n".join(out) + "\n"


def write_template(rt: Runtime, name: str) -> Path:
    """Generate `config/plugins/NAME.ini` unless it exists (an OP's file is never touched)."""
    path = rt.override(name)
    if path.exists():
        return path
    raw = layers.read_raw(rt.plugin(name) / CONFIG_INI)
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(template(raw, name), encoding="utf-8")
    os.replace(tmp, path)
    return path
