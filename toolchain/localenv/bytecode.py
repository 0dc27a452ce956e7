"""Bytecode of installed Python files, compiled over the machine's cores.

py_compile writes each `.pyc` as pip's serial compile does (the source's timestamp, or
its hash under SOURCE_DATE_EPOCH), so spreading the files over processes changes the
time it takes, never the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Below this many files, one process compiles them faster than a pool starts.
_POOL_FROM = 300


def compile_one(path: str) -> None:
    import py_compile

    try:
        py_compile.compile(path, doraise=True)
    except (py_compile.PyCompileError, OSError, ValueError):
        pass  # a file with a syntax error stays uncompiled, as with pip


def compile_files(paths: Sequence[str], workers: int) -> None:
    """Compile `paths` to bytecode next to them, spread over `workers` processes: the same
    .pyc files as a serial compile (py_compile's, timestamp-checked, as pip writes them)."""
    if workers <= 1 or len(paths) < _POOL_FROM:
        for path in paths:
            compile_one(path)
        return
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, len(paths) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(compile_one, paths, chunksize=chunk):
            pass


def compile_tree(site: Path, workers: int) -> None:
    """Compile every .py under `site` (see `compile_files`)."""
    compile_files(sorted(str(p) for p in site.rglob("*.py")), workers)


def compile_serially(paths: Sequence[str]) -> None:
    """Compile `paths` in this process (a pool's unit of work)."""
    for path in paths:
        compile_one(path)
