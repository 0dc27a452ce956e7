"""The runtime is the operator's alone, whatever the umask: nothing another user could
write is trusted, nor created writable by others."""

from __future__ import annotations

import marshal
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.plugin_dirs import tool_env
from tests.support.plugin_factory import build_plugin
from toolchain.core.layout import Runtime

BIN = Path(sys.executable).parent


def _run(*argv: str | Path, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=tool_env(),
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )  # fmt: skip


def test_nothing_in_the_runtime_is_writable_by_others_even_under_umask_0(tmp_path: Path) -> None:
    rt = Runtime.current()
    file = build_plugin(tmp_path, "hello", "1.0")
    proc = _run(BIN / "plugins.install", file, umask=0)
    assert proc.returncode == 0, proc.stderr
    ran = _run(BIN / "plugin_wrapper", "hello", "--", "true", umask=0)  # fills the env cache
    assert ran.returncode == 0, ran.stderr
    loose = [
        str(p.relative_to(rt.home))
        for p in [rt.home, *rt.home.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ]
    assert loose == []
    caches = sorted((rt.cache / "env").iterdir())
    assert [p.suffix for p in caches] == [".json", ".marshal"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in caches} == {0o600}


def test_an_env_cache_others_could_write_is_not_used(tmp_path: Path) -> None:
    rt = Runtime.current()
    assert _run(BIN / "plugins.install", build_plugin(tmp_path, "hello", "1.0")).returncode == 0
    assert _run(BIN / "plugin_wrapper", "hello", "--", "true").returncode == 0
    fast = rt.cache / "env" / "hello.marshal"
    doc = marshal.loads(fast.read_bytes())
    doc["exported"] = {**doc["exported"], "INJECTED": "by another user"}
    fast.write_bytes(marshal.dumps(doc))
    fast.chmod(0o666)  # as if another user had written it
    out = _run(BIN / "plugin_wrapper", "hello", "--", "env").stdout
    assert "INJECTED" not in out and "PLUGINS_CURRENT_PLUGIN_NAME=hello" in out
