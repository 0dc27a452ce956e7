"""The plugin env: configuration layers, variants, exported variables, cache, wrapper, shell."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.plugin_factory import write_tree
from toolchain.cli.wrapper import plugin_env_main, plugin_wrapper_main
from toolchain.core.errors import ConfigError
from toolchain.core.layout import Runtime
from toolchain.runtime import plugin_env

BIN = Path(sys.executable).parent
CHECKOUT = Path(__file__).resolve().parents[2]

CONFIG = """\
[general]
name = web
_version = 1.0
_add_plugin_dir_to_python_path = 1

[custom]
color = red
color[DEV] = green
color[DEV_JOHN] = blue
size = small
greeting = hi
log-level = info
home_dir = {{ HOME }}/web

[extra_daemon_api]
_cmd_and_args = api --serve
numprocesses = 2
"""


@pytest.fixture
def rt() -> Runtime:
    return Runtime.current()


@pytest.fixture
def web(rt: Runtime) -> Path:
    """Plugin `web` written straight into the runtime (an empty stand-in virtualenv)."""
    root = write_tree(rt.plugin("web"), "web", "1.0", config=CONFIG)
    (root / "local" / "bin").mkdir(parents=True)
    return root


def env_of(rt: Runtime, name: str = "web") -> dict[str, str]:
    return plugin_env.variables(rt, name, rt.plugin(name))


def test_exported_variables_and_paths(rt: Runtime, web: Path) -> None:
    env = env_of(rt)
    assert env["PLUGINS_CURRENT_PLUGIN_NAME"] == "web"
    assert env["PLUGINS_CURRENT_PLUGIN_DIR"] == str(web)
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_COLOR"] == "red"
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_LOG_LEVEL"] == "info"
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_HOME_DIR"] == f"{os.environ['HOME']}/web"
    assert env["PLUGINS_CURRENT_PLUGIN_EXTRA_DAEMON_API_NUMPROCESSES"] == "2"
    assert env["PLUGINS_CURRENT_PLUGIN_EXTRA_DAEMON_API_GRACEFUL_TIMEOUT"] == "10"  # default
    assert not [k for k in env if "__" in k or k.endswith("_CMD_AND_ARGS")]  # private keys
    assert env["PATH"].split(os.pathsep)[:2] == [f"{web}/bin", f"{web}/local/bin"]
    assert env["PATH"].endswith(os.environ["PATH"])
    assert env["PYTHONPATH"].split(os.pathsep) == [str(web), f"{web}/lib"]
    assert env["LD_LIBRARY_PATH"] == f"{web}/lib"
    assert env["TMPDIR"] == str(rt.tmp / "web") and (rt.tmp / "web").is_dir()


def test_layers_variants_and_module_name(
    rt: Runtime, web: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt.overrides.mkdir(parents=True)
    rt.override("web").write_text("[custom]\nsize = medium\ncolor[DEV] = yellow\n")
    provisioning = tmp_path / "provisioning"
    provisioning.mkdir()
    (provisioning / "web.ini").write_text("[custom]\nsize = large\n")
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"] == "medium"
    monkeypatch.setenv("PLUGIN_PROVISIONING_DIR", str(provisioning))
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"] == "large"  # the last layer wins

    # each layer picks its variant, then the later layer wins: the override's [DEV]
    # beats the plugin's more specific [DEV_JOHN]
    expected = {"": "red", "DEV": "yellow", "DEV_JOHN": "yellow", "DEV_MARY": "yellow", "X": "red"}
    for name, color in expected.items():
        monkeypatch.setenv("PLUGIN_CONFIG_NAME", name)
        assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_COLOR"] == color, name

    monkeypatch.setenv("PLUGIN_MODULE", "mfserv")
    env = env_of(rt)
    assert env["MFSERV_CURRENT_PLUGIN_NAME"] == "web"
    assert env["MFSERV_CURRENT_PLUGIN_CUSTOM_SIZE"] == "large"


def test_cache_follows_every_config_file(
    rt: Runtime, web: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = plugin_env.cache_file(rt, "web")
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"] == "small"
    assert cache.is_file()
    rt.overrides.mkdir(parents=True)
    rt.override("web").write_text("[custom]\nsize = medium\n")
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"] == "medium"
    provisioning = tmp_path / "prov"
    provisioning.mkdir()
    monkeypatch.setenv("PLUGIN_PROVISIONING_DIR", str(provisioning))
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"] == "medium"
    (provisioning / "web.ini").write_text("[custom]\nsize = huge\n")
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"] == "huge"
    (web / "config.ini").write_text(CONFIG.replace("color = red", "color = purple"))
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_COLOR"] == "purple"
    # templated values are rendered at each run, against that run's environment
    monkeypatch.setenv("HOME", "/elsewhere")
    assert env_of(rt)["PLUGINS_CURRENT_PLUGIN_CUSTOM_HOME_DIR"] == "/elsewhere/web"
    assert json.loads(cache.read_text())["exported"] is None

    # a broken override is an error naming it, not a stale value
    rt.override("web").write_text("[custom\n")
    with pytest.raises(Exception, match=str(rt.override("web"))):
        env_of(rt)


def _wrapper(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "plugin_wrapper"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
    )


def test_plugin_wrapper_execs_the_command(rt: Runtime, web: Path) -> None:
    proc = subprocess.Popen(
        [str(BIN / "plugin_wrapper"), "web", "--", "sh", "-c", "echo $$; exit 7"],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _err = proc.communicate()
    assert proc.returncode == 7
    assert int(out) == proc.pid  # exec'd in place: signals reach the command itself
    killed = _wrapper("web", "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == -15
    shown = _wrapper("web", "--", "web")
    assert shown.stdout.strip() == "hi from web"
    dumped = _wrapper("web", "--", "env", "-0")
    pairs = dict(item.split("=", 1) for item in dumped.stdout.split("\0") if "=" in item)
    assert pairs["PLUGINS_CURRENT_PLUGIN_DIR"] == str(web)
    missing = _wrapper("ghost", "--", "true")
    assert missing.returncode == 1 and missing.stderr.startswith("ERROR: plugin 'ghost'")
    assert _wrapper("web", "--", "no-such-command-here").returncode == 1
    assert plugin_wrapper_main(["web"]) == 2
    assert plugin_wrapper_main(["web", "--"]) == 2


def test_plugin_env_shell_in_the_plugin_dir_you_stand_in(rt: Runtime, web: Path) -> None:
    script = 'echo "$PLUGINS_CURRENT_PLUGIN_NAME $PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"; exit 3\n'
    for args, cwd in (([], web / "lib"), (["web"], rt.home)):
        proc = subprocess.run(
            [str(BIN / "plugin_env"), *args],
            input=script,
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**os.environ, "SHELL": "/bin/sh"},
        )
        assert (proc.returncode, proc.stdout) == (3, "web small\n"), proc.stderr
    os.chdir(rt.home)
    try:
        assert plugin_env_main([]) == 2
    finally:
        os.chdir(CHECKOUT)


def test_plugin_env_from_any_directory_below_the_plugin(rt: Runtime, web: Path) -> None:
    # local/ links to the virtualenv elsewhere, as an install makes it; a subdirectory holds
    # another tool's config.ini.
    venv = rt.home / "venvs" / "web.1"
    shutil.move(web / "local", venv)
    (web / "local").symlink_to(venv)
    (venv / "bin" / "deep").mkdir()
    vendored = web / "lib" / "vendor"
    vendored.mkdir(parents=True)
    (vendored / "config.ini").write_text("[tool]\nkey = value\n")
    script = 'echo "$PLUGINS_CURRENT_PLUGIN_NAME"; exit 3\n'
    for where in (web / "local" / "bin" / "deep", vendored):
        proc = subprocess.run(
            [str(BIN / "plugin_env")],
            input=script,
            capture_output=True,
            text=True,
            cwd=where,
            env={**os.environ, "SHELL": "/bin/sh", "PWD": str(where)},  # as a shell sets it
        )
        assert (proc.returncode, proc.stdout) == (3, "web\n"), (where, proc.stderr)


def test_plugin_wrapper_options(rt: Runtime, web: Path) -> None:
    here = _wrapper("web", "--cwd", "--", "sh", "-c", "pwd; printenv PWD")
    assert here.stdout == f"{web}\n{web}\n", here.stderr
    assert _wrapper("web", "--", "pwd").stdout == f"{CHECKOUT}\n"
    dumped = _wrapper("web", "--empty", "--", "env", "-0", FROM_CALLER="yes")
    pairs = dict(item.split("=", 1) for item in dumped.stdout.split("\0") if "=" in item)
    assert (
        "FROM_CALLER" not in pairs
        and "FROM_CALLER=yes" in _wrapper("web", "--", "env", FROM_CALLER="yes").stdout
    )
    assert pairs["HOME"] == os.environ["HOME"]
    assert pairs["PLUGIN_RUNTIME_HOME"] == str(rt.home)
    assert pairs["PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"] == "small"
    assert pairs["PATH"] == f"{web}/bin:{web}/local/bin:/usr/local/bin:/usr/bin:/bin"
    assert pairs["PYTHONPATH"] == f"{web}:{web}/lib"
    kept = {"HOME", "USER", "LOGNAME", "TMPDIR", "PATH", "PYTHONPATH", "LD_LIBRARY_PATH"}
    assert all(k in kept or k.startswith(("PLUGIN_", "PLUGINS_CURRENT_PLUGIN_")) for k in pairs)
    # A cache that no longer says what the configuration says (its key still matching):
    # only --ignore-cache computes the env again, and caches it.
    assert _wrapper("web", "--", "printenv", "PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE").stdout == (
        "small\n"
    )
    cached = plugin_env.cache_file(rt, "web")
    doc = json.loads(cached.read_text())
    doc["merged"]["custom"]["size"] = "stale"
    cached.write_text(json.dumps(doc))
    cached.with_suffix(".marshal").unlink()
    read = ["printenv", "PLUGINS_CURRENT_PLUGIN_CUSTOM_SIZE"]
    assert _wrapper("web", "--", *read).stdout == "stale\n"
    assert _wrapper("web", "--ignore-cache", "--", *read).stdout == "small\n"
    assert _wrapper("web", "--", *read).stdout == "small\n"


def test_hostname_keys_export_their_addresses(rt: Runtime) -> None:
    custom = {"db_hostname": "localhost", "peers_hostnames": "127.0.0.1, localhost,"}
    root = write_tree(rt.plugin("dbc"), "dbc", custom=custom)
    (root / "local" / "bin").mkdir(parents=True)
    prefix = "PLUGINS_CURRENT_PLUGIN_CUSTOM"
    read = ["printenv", f"{prefix}_DB_HOSTNAME", f"{prefix}_DB_HOSTNAME_IP",
            f"{prefix}_PEERS_HOSTNAMES_IPS"]  # fmt: skip
    shown = _wrapper("dbc", "--", *read)
    assert shown.stdout == "localhost\n127.0.0.1\n127.0.0.1,127.0.0.1\n", shown.stderr
    # Resolved when the env is computed: the cache keeps an address for hostnames.TTL.
    cached = plugin_env.cache_file(rt, "dbc")
    doc = json.loads(cached.read_text())
    assert doc["expires"] > time.time()
    for expires, seen in ((time.time() + 100, "127.0.0.9"), (time.time() - 1, "127.0.0.1")):
        doc["expires"] = expires
        doc["exported"][f"{prefix}_DB_HOSTNAME_IP"] = "127.0.0.9"  # as if the DNS had changed
        cached.write_text(json.dumps(doc))
        cached.with_suffix(".marshal").unlink()
        assert _wrapper("dbc", "--", "printenv", read[2]).stdout == f"{seen}\n"
        assert _wrapper("dbc", "--", "printenv", read[2]).stdout == f"{seen}\n"  # the fast path
    override = rt.home / "config" / "plugins" / "dbc.ini"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text("[custom]\npeers_hostnames = localhost, no..such\n")
    failed = _wrapper("dbc", "--", "true")
    assert failed.returncode == 1
    assert failed.stderr == (
        "ERROR: plugin dbc: [custom] peers_hostnames: 'no..such' does not resolve (not a valid "
        "host name); fix the name in its configuration or in DNS (/etc/hosts)\n"
    )


def test_addresses_outlive_a_dns_failure_once_resolved(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from toolchain.runtime import hostnames

    root = write_tree(rt.plugin("dbc"), "dbc", custom={"db_hostname": "localhost"})
    (root / "local" / "bin").mkdir(parents=True)
    var = "PLUGINS_CURRENT_PLUGIN_CUSTOM_DB_HOSTNAME_IP"
    assert plugin_env.variables(rt, "dbc", root)[var] == "127.0.0.1"

    def down(host: str) -> str:  # a DNS server that does not answer: cannot be caused here
        raise ValueError("Temporary failure in name resolution")

    monkeypatch.setattr(hostnames, "resolve", down)
    cached = plugin_env.cache_file(rt, "dbc")
    doc = json.loads(cached.read_text())
    doc["expires"] = time.time() - 1
    cached.write_text(json.dumps(doc))
    assert plugin_env.variables(rt, "dbc", root)[var] == "127.0.0.1"
    assert "does not resolve (Temporary failure in name resolution); keeping the last" in (
        caplog.text
    )
    plugin_env.drop_cache(rt, "dbc")  # nothing resolved before: an error
    with pytest.raises(ConfigError, match=r"\[custom\] db_hostname: 'localhost' does not"):
        plugin_env.variables(rt, "dbc", root)


def _on_a_terminal(argv: list[str], env: dict[str, str], typed: str) -> str:
    """Run `argv` on a new pseudo-terminal (an interactive shell), type `typed`, read all."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)  # fmt: skip
    os.close(slave)
    os.write(master, typed.encode())
    out, deadline = b"", time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.kill()
    proc.wait(timeout=10)
    os.close(master)
    return out.decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash"])
def test_interactive_shell_keeps_the_plugin_first_after_the_users_startup_file(
    rt: Runtime, web: Path, tmp_path: Path, shell: str
) -> None:
    """~/.bashrc (or ~/.zshrc, $ENV) puts pyenv's shims first: `python` stays the plugin's."""
    program = shutil.which(shell)
    assert program, f"{shell} is missing: scripts/system-tools installs it"
    shims = tmp_path / "pyenv-shims"
    shims.mkdir()
    for directory, says in ((shims, "pyenv python"), (web / "local" / "bin", "plugin python")):
        (directory / "python").write_text(f"#!/bin/sh\necho {says}\n")
        (directory / "python").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    startup = f'export PATH={shims}:"$PATH"\nexport PYTHONPATH=/elsewhere\nPS1="user$ "\n'
    for rc in (".bashrc", ".zshrc", "shrc"):
        (home / rc).write_text(startup)
    env = {**os.environ, "HOME": str(home), "SHELL": program, "ENV": str(home / "shrc")}
    typed = 'python; echo "PP=$PYTHONPATH"; echo "PS=$PS1"; exit\n'
    out = _on_a_terminal([str(BIN / "plugin_env"), "web"], env, typed)
    assert "plugin python" in out and "pyenv python" not in out, out
    assert f"PP={web}:{web / 'lib'}:/elsewhere" in out, out
    assert "PS=(web) user$ " in out, out
    # plugin_env from a plugin_env shell: the same, one level deeper, and back.
    typed = f'{BIN / "plugin_env"} web\npython; echo "PS=$PS1"; exit\necho "OUT=$PS1"; exit\n'
    out = _on_a_terminal([str(BIN / "plugin_env"), "web"], env, typed)
    assert "plugin python" in out and "pyenv python" not in out, out
    assert "PS=(web) user$ " in out and "OUT=(web) user$ " in out, out


def test_a_plugin_without_its_virtualenv_is_refused_not_run_with_another_python(
    rt: Runtime, tmp_path: Path
) -> None:
    """Devlinked before `make`: plugin_wrapper would run the toolchain's python."""
    source = write_tree(tmp_path / "src" / "dev", "dev", "1.0")
    linked = subprocess.run([str(BIN / "plugins.install"), "--devlink", str(source)],
                            capture_output=True, text=True)  # fmt: skip
    assert linked.returncode == 0, linked.stderr
    assert f"WARNING: {source} has no virtualenv (local/) yet: run make in it" in linked.stderr
    for argv in ([str(BIN / "plugin_wrapper"), "dev", "--", "python", "-c", ""],
                 [str(BIN / "plugin_env"), "dev"]):  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert proc.returncode == 1, proc
        assert proc.stderr == (
            f"ERROR: plugin dev: {source} has no virtualenv (local/) yet: run make in {source}\n"
        )
    (source / "local" / "bin").mkdir(parents=True)
    ran = subprocess.run([str(BIN / "plugin_wrapper"), "dev", "--", "true"])
    assert ran.returncode == 0


def test_wrapper_with_a_warm_cache_imports_nothing_heavy(rt: Runtime, web: Path) -> None:
    (web / "config.ini").write_text(CONFIG.replace("{{ HOME }}/web", "/srv/web"))
    env_of(rt)  # warms the cache
    code = textwrap.dedent(
        """
        import sys
        from toolchain.cli import wrapper
        from toolchain.core.layout import Runtime
        from toolchain.runtime.plugin_env import variables
        rt = Runtime.current()
        env = variables(rt, "web", rt.plugin("web"))
        assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_HOME_DIR"] == "/srv/web"
        heavy = ["configparser", "jinja2", "packaging", "filelock", "virtualenv",
                 "toolchain.config.layers", "toolchain.installer.install", "subprocess"]
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=CHECKOUT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_operator_side_imports_no_build_side_library() -> None:
    code = textwrap.dedent(
        """
        import sys
        import toolchain.cli.plugins, toolchain.cli.wrapper, toolchain.installer.install
        import toolchain.installer.inspection, toolchain.artifact.extract
        import toolchain.installer.lock, toolchain.installer.journal
        banned = ["cookiecutter", "piptools", "pathspec", "toolchain.build.release",
                  "toolchain.build.freeze", "toolchain.build.template",
                  "toolchain.build.releaseignore"]
        print(sorted(m for m in banned if m in sys.modules))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=CHECKOUT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
