"""Which files of a plugin directory go into a release (`.releaseignore`, gitignore syntax)."""

from __future__ import annotations

import os
from pathlib import Path

from toolchain.errors import ReleaseError
from toolchain.layout import RELEASE_DIR, RELEASEIGNORE, VENV

# Never packed, whatever `.releaseignore` says.
ALWAYS_EXCLUDED_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "__pycache__"})
ALWAYS_EXCLUDED_TOP = frozenset({VENV, ".wheelhouse", RELEASE_DIR})
ARTIFACT_SUFFIX = ".plugin"


def load_spec(root: Path):  # type: ignore[no-untyped-def]
    """The pathspec of the plugin's `.releaseignore` (empty when there is none)."""
    import pathspec

    path = root / RELEASEIGNORE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception as exc:  # pathspec raises several kinds for a bad pattern
        raise ReleaseError(f"{path}: invalid pattern: {exc}") from None


def _has_negation(spec) -> bool:  # type: ignore[no-untyped-def]
    return any(getattr(p, "include", None) is False for p in spec.patterns)


def select(root: Path) -> list[str]:
    """Relative POSIX paths (files, symlinks, non-ignored dirs) to release, sorted."""
    spec = load_spec(root)
    # Without negations an ignored directory cannot hold a kept file: skip its whole tree.
    prune = not _has_negation(spec)
    kept: list[str] = []
    for current, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep_dirs = []
        for d in sorted(dirs):
            rel = rel_dir + d
            if d in ALWAYS_EXCLUDED_DIRS or (not rel_dir and d in ALWAYS_EXCLUDED_TOP):
                continue
            if os.path.islink(os.path.join(current, d)):
                if not spec.match_file(rel):
                    kept.append(rel)
                continue
            ignored = spec.match_file(rel + "/")
            if ignored and prune:
                continue
            if not ignored:
                kept.append(rel)
            keep_dirs.append(d)
        dirs[:] = keep_dirs
        for f in files:
            rel = rel_dir + f
            if f.endswith(ARTIFACT_SUFFIX):
                continue
            if not spec.match_file(rel):
                kept.append(rel)
    # A directory ignored itself but holding re-included files is still needed.
    present = set(kept)
    for rel in list(kept):
        parent = rel.rpartition("/")[0]
        while parent and parent not in present:
            present.add(parent)
            kept.append(parent)
            parent = parent.rpartition("/")[0]
    return sorted(kept)
