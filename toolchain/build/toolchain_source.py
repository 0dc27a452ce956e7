"""Where the running toolchain was installed from, as a pip requirement for CI pipelines.

A plugin's release pipeline installs the toolchain into a virtualenv of the runner. By
default it installs it the way it was installed here, which PEP 610's `direct_url.json`
records: from a VCS URL at its commit, from an archive or wheel URL, from a directory;
with no such record, from the package index, at this version. A `file:` source is a path
of this machine, which a runner probably cannot reach: `warning` says so.
"""

from __future__ import annotations

import json
from importlib import metadata

DISTRIBUTION = "plugin-toolchain"


def requirement() -> str:
    """The pip requirement that installs this toolchain as it was installed here."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return DISTRIBUTION
    text = dist.read_text("direct_url.json")
    if not text:
        return f"{DISTRIBUTION}=={dist.version}"
    try:
        doc = json.loads(text)
        url = str(doc["url"])
    except (ValueError, KeyError, TypeError):
        return f"{DISTRIBUTION}=={dist.version}"
    vcs = doc.get("vcs_info")
    if isinstance(vcs, dict):
        ref = vcs.get("commit_id") or vcs.get("requested_revision")
        url = f"{vcs.get('vcs', 'git')}+{url}" + (f"@{ref}" if ref else "")
        if doc.get("subdirectory"):
            url += f"#subdirectory={doc['subdirectory']}"
    return f"{DISTRIBUTION} @ {url}"


def warning(requirement: str) -> str | None:
    """Why a CI runner probably cannot install from `requirement`, if it is a local path."""
    source = requirement.split(" @ ", 1)[-1].strip()
    local = source.startswith(("file:", "/", "./", "../", "~"))
    if not local:
        return None
    return (
        f"the CI pipelines install the toolchain from {source}, a path of this machine that "
        "a runner probably cannot reach: set the CI variable PLUGIN_TOOLCHAIN, or create the "
        "plugin with --set toolchain=REQUIREMENT (an index version, a VCS or wheel URL)"
    )
