"""The runtime override file of a plugin (`config/plugins/NAME.ini`), generated once, and the
keys an override sets that the plugin does not have (a typo is otherwise silent)."""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.config import layers, schema
from toolchain.core.layout import CONFIG_INI, Runtime, provisioning_dir


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


def unknown_keys(rt: Runtime, name: str) -> list[str]:
    """`FILE: [section] key` for each key an override file sets that the plugin's config.ini
    does not have (variants aside): exported all the same, but most likely a typo."""
    own = layers.read_raw(rt.plugin(name) / CONFIG_INI)
    known = {(s, schema.split_variant(k)[0]) for s, keys in own.items() for k in keys}
    provisioning = provisioning_dir()
    files = [rt.override(name)] + ([provisioning / f"{name}.ini"] if provisioning else [])
    found = []
    for path in files:
        if not path.is_file():
            continue
        for section, keys in layers.read_raw(path).items():
            for written in keys:
                key = schema.split_variant(written)[0]
                if (section, key) not in known and schema.schema_for(section) is None:
                    found.append(f"{path}: [{section}] {written}")
    return found
