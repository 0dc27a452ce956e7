"""Plugin naming rules."""

from __future__ import annotations

import re

from toolchain.core.errors import InvalidName

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RESERVED = {"base", "config"}


def check_name(name: str) -> str:
    """Return `name` when it is a valid plugin name, else raise InvalidName saying why."""
    if not _NAME.match(name):
        shown = repr(name) if len(name) <= 70 else f"{name[:60]!r}... ({len(name)} characters)"
        raise InvalidName(f"invalid plugin name {shown}: use 1 to 64 letters, digits, '_' or '-'")
    if name.startswith("-"):
        raise InvalidName(f"invalid plugin name {name!r}: it must not start with '-' (an option)")
    if name.startswith("plugin_") or name.startswith("__"):
        raise InvalidName(f"invalid plugin name {name!r}: it must not start with 'plugin_' or '__'")
    if name in _RESERVED:
        raise InvalidName(
            f"invalid plugin name {name!r}: 'base' and 'config' are reserved, as in MetWork: "
            "they name the module's own layers, which every plugin env builds on"
        )
    return name
