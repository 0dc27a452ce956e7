"""Which of the targets a release names (its metadata's `targets`, `core.targets`) this
host can install: its Python tag, and a platform among the host's wheel platforms."""

from __future__ import annotations

from typing import Any

from toolchain.artifact import spec


def of_metadata(meta: dict[str, Any]) -> list[str]:
    """The targets a release's metadata names (its python tag and platform before them)."""
    listed = meta.get("targets")
    if isinstance(listed, list) and listed and all(isinstance(t, str) for t in listed):
        return list(listed)
    return [f"{meta.get('python_tag')}-{meta.get('platform')}"]


def fits_host(target: str) -> bool:
    """Whether this interpreter and machine can install a release built for `target`."""
    from packaging import tags

    python, _sep, platform = target.partition("-")
    if python != spec.python_tag():
        return False
    return platform in ("any", spec.platform_tag()) or platform in {
        t.platform for t in tags.sys_tags()
    }
