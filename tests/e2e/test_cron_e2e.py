"""A generated cron line runs as cron runs it: `/bin/sh -c` in an environment with nothing
but HOME, LOGNAME, SHELL and PATH, and still finds its (non-default) runtime; the options
of its prefix set the job's real niceness and I/O class."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.plugin_factory import build_plugin
from toolchain.cli.plugins import install_main
from toolchain.core.layout import Runtime

pytestmark = pytest.mark.slow


def cron_command(line: str) -> str:
    """What cron hands to /bin/sh for a crontab line (no `%` stdin part in these lines)."""
    fields = line.split(None, 1 if line.startswith("@") else 5)
    command = fields[-1]
    assert not re.search(r"(?<!\\)%", command), "an unescaped % would end the command"
    return command.replace("\\%", "%")


def test_the_generated_line_runs_in_cron_s_empty_environment(tmp_path: Path) -> None:
    rt = Runtime.current()  # a runtime in tmp_path: not the default one
    cron = "* * * * * echo ran as $PLUGINS_CURRENT_PLUGIN_NAME in $PLUGIN_RUNTIME_HOME\n"
    # The job's niceness (field 19 of /proc/PID/stat, after the `(comm)` field) and I/O
    # class, as the kernel has them for the job's own process.
    probe = tmp_path / "probe"
    probe.write_text(
        "#!/bin/sh\necho $1 nice $(cut -d')' -f2 /proc/$$/stat | cut -d' ' -f18) "
        "io $(ionice -p $$)\n"
    )
    probe.chmod(0o755)
    cron += f"* * * * * --nice 7 --ionice best-effort:6 -- {probe} set\n"
    cron += f"* * * * * --low --random-sleep 0.5 --no-lock -- {probe} low\n"
    assert install_main([str(build_plugin(tmp_path, "cronny", "1.0", crontab=cron))]) == 0
    lines = [
        line
        for line in (rt.home / "config" / "crontab").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(lines) == 3
    home = tmp_path / "cron-home"
    home.mkdir()
    for line in lines:
        proc = subprocess.run(
            ["env", "-i", f"HOME={home}", "LOGNAME=root", "SHELL=/bin/sh", "PATH=/usr/bin:/bin",
             "/bin/sh", "-c", cron_command(line)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (rt.logs / "cronny" / "cron.log").read_text()
    assert f"ran as cronny in {rt.home}" in log
    assert "set nice 7 io best-effort: prio 6\n" in log
    assert "low nice 19 io idle\n" in log
    assert re.search(r"start pid \d+ after a random sleep of 0\.[0-5]s: ", log)
    assert not (home / ".local" / "share" / "plugin-runtime").exists()
    assert os.listdir(home) == []
