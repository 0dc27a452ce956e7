"""A fake `crontab` command that keeps the user's crontab in a file, first on PATH."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FAKE_CRONTAB = """#!/bin/sh
# Fake crontab(1): -l prints the table, - or FILE replaces it.
table="$FAKE_CRONTAB_FILE"
case "$1" in
  -l) if [ -f "$table" ]; then cat "$table"; else echo "no crontab for $USER" >&2; exit 1; fi ;;
  -) cat > "$table" ;;
  *) cat "$1" > "$table" ;;
esac
"""


def install_fake_crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake `crontab` first on PATH; return the file holding the user's table."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "crontab"
    script.write_text(FAKE_CRONTAB, encoding="utf-8")
    script.chmod(0o755)
    table = tmp_path / "user-crontab"
    monkeypatch.setenv("FAKE_CRONTAB_FILE", str(table))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PLUGIN_INSTALL_CRONTAB", "1")
    return table
