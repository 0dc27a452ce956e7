"""Plugins that build on plugins, end to end with real make, pip and supervisord.

`core` has a Python module in `lib/` and pins a package (alpha); `app` requires
`core>=1.0` and needs beta (which needs alpha). Both are released with nothing installed,
core's pins found through PLUGIN_REPOSITORY; then installed offline with `--repository`;
app's commands, cron job and daemon see core's module and packages.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_cron_e2e import cron_command
from tests.e2e.test_templates_e2e import _script
from tests.support.daemon_fixtures import wait_for
from tests.support.plugin_dirs import render_default, set_requirements, tool_env
from toolchain.artifact import read
from toolchain.running import supervisor

pytestmark = pytest.mark.slow


def _run(*argv: str, cwd: Path | None = None, ok: bool = True, **env: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd,
                          env=tool_env(**env), stdin=subprocess.DEVNULL, timeout=300)  # fmt: skip
    assert (proc.returncode == 0) is ok, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def _source(parent: Path, wheels: Path, name: str, version: str, requires: str,
            *packages: str) -> Path:  # fmt: skip
    root = render_default(parent, name)
    ini = root / "config.ini"
    text = ini.read_text().replace("_version = 0.1.0", f"_version = {version}")
    ini.write_text(re.sub(r"(?m)^_requires =.*$", f"_requires = {requires}", text))
    set_requirements(root, wheels, *packages)
    return root


def _release(root: Path, **env: str) -> tuple[Path, str]:
    out = _run("make", "-C", str(root), "release", **env)
    (artifact,) = root.glob("*.plugin")
    return artifact, out


def test_core_and_app_release_install_and_inherit(tmp_path: Path, wheels: Path) -> None:
    repo = tmp_path / "repository"
    repo.mkdir()
    core = _source(tmp_path / "v1", wheels, "core", "1.0", "", "alpha==1.0")
    (core / "lib").mkdir(exist_ok=True)
    (core / "lib" / "coremod.py").write_text("WHO = 'core 1.0'\n")
    core_file, _ = _release(core)
    (repo / core_file.name).write_bytes(core_file.read_bytes())

    app = _source(tmp_path, wheels, "app", "1.0", "core>=1.0", "beta")
    (app / "crontab").write_text(
        '* * * * * python -c \'import coremod, alpha, beta; print("cron sees", coremod.WHO, '
        "alpha.__version__)'\n"
    )
    ini = app / "config.ini"
    ini.write_text(ini.read_text() + (
        "\n[extra_daemon_main]\n_cmd_and_args = python -u -c 'import coremod, alpha, time; "
        "print(\"daemon sees\", coremod.WHO, alpha.__version__); time.sleep(600)'\n"
    ))  # fmt: skip
    # Its postinstall runs before the swap, core staged in the same transaction.
    postinstall = app / "postinstall"
    postinstall.write_text(
        "#!/bin/sh\nset -e\npython -c 'import coremod; print(coremod.WHO)' > \"$TMPDIR/seen\"\n"
    )
    postinstall.chmod(0o755)
    app_file, out = _release(app, PLUGIN_REPOSITORY=str(repo))
    assert "frozen without" not in out
    pins = (app / "python3_virtualenv_sources" / "requirements3.txt").read_text()
    assert "alpha==1.0" in pins  # core's pin constrains: alone, beta would take alpha 2.0
    _top, meta, _ = read.read_head(app_file)
    assert meta["pins"] == {"alpha": "1.0", "beta": "1.0"}
    assert meta["inherited_pins"] == {
        "core": {"version": "1.0", "source": "repository", "pins": {"alpha": "1.0"}}
    }

    # Installed offline, core from the repository, before app.
    out = _run(_script("plugins.install"), "--repository", str(repo), str(app_file),
               PIP_NO_INDEX="1", https_proxy="http://127.0.0.1:9")  # fmt: skip
    assert out.index("installed core") < out.index("installed app")
    runtime = Path(tool_env()["PLUGIN_RUNTIME_HOME"])
    assert (runtime / "tmp" / "app" / "seen").read_text() == "core 1.0\n"
    check = "import coremod, alpha, beta; print(coremod.WHO, alpha.__version__)"
    wrapper = [_script("plugin_wrapper"), "app", "--", "python", "-c", check]
    assert _run(*wrapper).strip() == "core 1.0 1.0"

    lines = [line for line in (runtime / "config" / "crontab").read_text().splitlines()
             if line and not line.startswith("#")]  # fmt: skip
    (cron_home := tmp_path / "cron-home").mkdir()
    _run("env", "-i", f"HOME={cron_home}", "LOGNAME=root", "SHELL=/bin/sh",
         "PATH=/usr/bin:/bin", "/bin/sh", "-c", cron_command(lines[0]))  # fmt: skip
    assert "cron sees core 1.0 1.0" in (runtime / "log" / "app" / "cron.log").read_text()
    try:
        _run(_script("plugins.start"))
        log = runtime / "log" / "app" / "main.log"
        wait_for("the daemon", lambda: log.is_file() and "daemon sees" in log.read_text(), 30)
        assert "daemon sees core 1.0 1.0" in log.read_text()
    finally:
        supervisor.stop(runtime)

    # An app pinning alpha differently (frozen without core's pins) is refused.
    other = _source(tmp_path / "other", wheels, "app", "1.1", "core>=1.0", "beta")
    other_file, out = _release(other, PLUGIN_RUNTIME_HOME=str(tmp_path / "empty-runtime"))
    assert "WARNING: frozen without the pins of core: not installed, and no " in out
    err = _run(_script("plugins.install"), "--upgrade", str(other_file), ok=False)
    assert "plugin app pins alpha==2.0 but plugin core, which it inherits, pins alpha==1.0" in err

    err = _run(_script("plugins.uninstall"), "core", ok=False)
    assert "app" in err

    # Upgrading core changes what app sees, without reinstalling app.
    core2 = _source(tmp_path / "v2", wheels, "core", "1.1", "", "alpha==1.0")
    (core2 / "lib").mkdir(exist_ok=True)
    (core2 / "lib" / "coremod.py").write_text("WHO = 'core 1.1'\n")
    core2_file, _ = _release(core2)
    _run(_script("plugins.install"), "--upgrade", str(core2_file))
    assert _run(*wrapper).strip() == "core 1.1 1.0"

    # make in app's directory notices that core's pins changed in the runtime.
    time.sleep(0.01)
    out = _run("make", "-C", str(app))
    assert "plugin-build freeze" in out, out
    assert json.loads(json.dumps(meta))  # the metadata is plain JSON
