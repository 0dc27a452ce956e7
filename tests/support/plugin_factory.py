"""Small `.plugin` files built by the tests with `toolchain.artifact`, no make or pip needed.

`build_plugin(tmp_path, "hello", "1.0")` writes a plugin tree (config.ini, a `bin/`
command, a postinstall, a crontab, optional wheels in its wheelhouse) and packs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolchain.artifact import spec
from toolchain.artifact.pack import pack as pack_artifact
from toolchain.artifact.spec import FORMAT_VERSION
from toolchain.core.layout import WHEELHOUSE

MTIME = 1_700_000_000

# Prints its greeting and name from the plugin env, and what the venv's python is.
COMMAND = """#!/bin/sh
echo "${PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING:-unset} from ${PLUGINS_CURRENT_PLUGIN_NAME:-?}"
"""

# Leaves a trace in the plugin's runtime tmp dir, where the tests look for it.
POSTINSTALL = """#!/bin/sh
set -e
echo "$PLUGINS_CURRENT_PLUGIN_NAME $PLUGINS_CURRENT_PLUGIN_GENERAL_VERSION_SEEN" \
  > "$TMPDIR/postinstall.done"
"""

CRONTAB = """# m h dom mon dow command
# */5 * * * * {{PLUGINS_CURRENT_PLUGIN_DIR}}/bin/hello
"""


def config_ini(
    name: str, version: str, release: str = "1", custom: Mapping[str, str] | None = None
) -> str:
    """A plugin's config.ini with a [custom] section."""
    lines = [
        "[general]",
        f"name = {name}",
        f"_version = {version}",
        f"_release = {release}",
        "_summary = a test plugin",
        "",
        "[custom]",
    ]
    lines += [f"{k} = {v}" for k, v in (custom or {"greeting": "hello"}).items()]
    return "\n".join(lines) + "\n"


def write_tree(
    root: Path,
    name: str,
    version: str = "1.0",
    release: str = "1",
    *,
    custom: Mapping[str, str] | None = None,
    config: str | None = None,
    postinstall: str | None = POSTINSTALL,
    crontab: str | None = CRONTAB,
    files: Mapping[str, str] | None = None,
    wheels: Sequence[Path] = (),
) -> Path:
    """Write a plugin source tree at `root` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.ini").write_text(
        config if config is not None else config_ini(name, version, release, custom),
        encoding="utf-8",
    )
    command = root / "bin" / name
    command.parent.mkdir(exist_ok=True)
    command.write_text(COMMAND, encoding="utf-8")
    command.chmod(0o755)
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / f"{name.replace('-', '_')}_helper.py").write_text(
        f"VERSION = {version!r}\n", encoding="utf-8"
    )
    (root / "docs").mkdir(exist_ok=True)
    os.symlink(f"../bin/{name}", root / "docs" / "command")
    if postinstall is not None:
        (root / "postinstall").write_text(postinstall, encoding="utf-8")
        (root / "postinstall").chmod(0o755)
    if crontab is not None:
        (root / "crontab").write_text(crontab, encoding="utf-8")
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    if wheels:
        house = root / WHEELHOUSE
        house.mkdir(parents=True, exist_ok=True)
        for wheel in wheels:
            shutil.copy(wheel, house / wheel.name)
    return root


def metadata(
    name: str, version: str, release: str = "1", extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The metadata a release of this machine would carry."""
    doc: dict[str, Any] = {
        "name": name,
        "version": version,
        "release": release,
        "summary": "a test plugin",
        "license": "BSD-3-Clause",
        "url": "",
        "maintainer": "tests",
        "vendor": "",
        "requires": [],
        "build_host": "tests",
        "build_date": "2023-11-14T22:13:20Z",
        "python_tag": spec.python_tag(),
        "platform": spec.platform_tag(),
        "format_version": FORMAT_VERSION,
    }
    doc.update(extra or {})
    return doc


def pack(tree: Path, out: Path, meta: Mapping[str, Any], top: str | None = None) -> Path:
    """Pack `tree` into the artifact `out` (every file of it) with the metadata `meta`.

    The archive's top directory is `top`, by default the name in `meta`.
    """
    rels = sorted(
        os.path.relpath(os.path.join(d, f), tree)
        for d, dirs, files in os.walk(tree)
        for f in [*dirs, *files]
    )
    members = [(rel, os.path.join(tree, rel)) for rel in rels]
    pack_artifact(out, top or meta["name"], members, dict(meta), mtime=MTIME)
    return out


def build_plugin(
    directory: Path,
    name: str,
    version: str = "1.0",
    release: str = "1",
    *,
    wheels: Sequence[Path] = (),
    meta: Mapping[str, Any] | None = None,
    **tree_options: Any,
) -> Path:
    """Write a plugin tree under `directory` and pack it as `NAME-VERSION-RELEASE.*.plugin`."""
    tree = directory / f"src-{name}-{version}-{release}"
    if tree.exists():
        shutil.rmtree(tree)
    write_tree(tree, name, version, release, wheels=wheels, **tree_options)
    out = directory / spec.artifact_name(name, version, release)
    return pack(tree, out, metadata(name, version, release, meta), top=name)
