"""`plugins.list`'s fast path: the installed plugins, read with `os` and `json` only.

Listing is the operator's most frequent command and most of its cost would be imports
(pathlib, dataclasses, logging, filelock). In the common case -- nothing left to
recover, no devlinked plugin -- the rows are read here, under the shared lock or, while a
writer holds it, around the writer's entries without waiting for it, as
`toolchain.installer.lock.reading` does; in any other case this returns None and the
full path (`lock.reading`, `registry.installed`) runs.
"""

from __future__ import annotations

import json
import os

from toolchain.core.settings import runtime_home

CONFIG_INI = "config.ini"  # toolchain.core.layout's names, which this module must not import
METADATA = os.path.join(".release", "metadata.json")
VENV = "local"


def rows() -> list[dict[str, str | None]] | None:
    """The rows of `plugins.list` (as `Installed.as_dict`), or None: take the full path."""
    import fcntl

    home = runtime_home()
    plugins = os.path.join(home, "plugins")
    try:
        names = sorted(os.listdir(plugins))
        venvs = set(os.listdir(os.path.join(home, "venvs")))
        fd = os.open(os.path.join(home, "lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            writing = False
        except BlockingIOError:  # a writer at work: read around its '.' entries, not waiting
            writing = True
        found: list[dict[str, str | None]] = []
        for name in names:
            entry = os.path.join(plugins, name)
            if name.startswith(".") and writing:
                continue  # the writer's staging, backup or journal
            if name.startswith(".") or os.path.islink(entry):
                return None  # debris to recover, or a devlink described from its config
            link = os.path.join(entry, VENV)
            if os.path.islink(link):
                venvs.discard(os.path.basename(os.path.normpath(os.readlink(link))))
            if not os.path.isfile(os.path.join(entry, CONFIG_INI)):
                continue
            with open(os.path.join(entry, METADATA), encoding="utf-8") as handle:
                meta = json.load(handle)
            if not isinstance(meta, dict):
                return None
            version, release = str(meta.get("version")), str(meta.get("release"))
            row = {"name": name, "version": version, "release": release, "home": entry}
            found.append({**row, "dev_link": None})
        if writing:
            return found  # the writer's new virtualenvs are not referenced yet
        return None if venvs else found  # an unreferenced virtualenv: recovery collects it
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
