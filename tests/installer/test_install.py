"""plugins.install / uninstall / list / info / check / repackage, through their entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from tests.support.plugin_dirs import tool_env
from tests.support.plugin_factory import build_plugin, write_tree
from toolchain.cli.plugins import (
    check_main,
    info_main,
    install_main,
    list_main,
    repackage_main,
    uninstall_main,
)
from toolchain.core.layout import Runtime
from toolchain.runtime import plugin_env


@pytest.fixture
def rt() -> Runtime:
    return Runtime.current()


def listed(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    """What `plugins.list --json` shows, by name."""
    capsys.readouterr()
    assert list_main(["--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def debris(rt: Runtime) -> list[str]:
    """Staging, backup and journal entries left in the runtime."""
    return sorted(p.name for p in rt.plugins.iterdir() if p.name.startswith("."))


def env_of(rt: Runtime, name: str) -> dict[str, str]:
    return plugin_env.variables(rt, name, rt.plugin(name))


@dataclass
class Versions:
    """hello 1.0-1 installed (alpha 1.0 in its venv, an override set), and other files of it."""

    v1_again: Path
    older: Path
    newer_release: Path
    override: Path


@pytest.fixture
def hello_v1(
    tmp_path: Path, rt: Runtime, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> Versions:
    v1 = build_plugin(tmp_path, "hello", "1.0", wheels=[wheels / "alpha-1.0-py3-none-any.whl"])
    files = Versions(
        v1_again=build_plugin(tmp_path / "again", "hello", "1.0"),
        older=build_plugin(tmp_path, "hello", "0.9"),
        newer_release=build_plugin(
            tmp_path, "hello", "1.0", "2", wheels=[wheels / "alpha-2.0-py3-none-any.whl"]
        ),
        override=rt.override("hello"),
    )
    assert install_main([str(v1)]) == 0
    assert "installed hello 1.0-1" in capsys.readouterr().out
    assert (rt.tmp / "hello" / "postinstall.done").read_text().startswith("hello")
    assert listed(capsys)["hello"]["version"] == "1.0"
    assert "# greeting = hello" in files.override.read_text()
    files.override.write_text("[custom]\ngreeting = bonjour\n")
    assert env_of(rt, "hello")["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "bonjour"
    return files


def test_an_installed_name_is_refused_without_upgrade_or_force(
    hello_v1: Versions, capsys: pytest.CaptureFixture[str]
) -> None:
    # default: an installed name is refused, whatever the version
    for file in (hello_v1.v1_again, hello_v1.newer_release):
        assert install_main([str(file)]) == 1
        assert "already installed" in capsys.readouterr().err
    # --upgrade: the same or an older version is refused
    for file in (hello_v1.v1_again, hello_v1.older):
        assert install_main(["--upgrade", str(file)]) == 1
        assert "is not newer" in capsys.readouterr().err
    assert listed(capsys)["hello"]["release"] == "1"


def test_upgrade_to_a_newer_release_keeps_the_override_file(
    hello_v1: Versions, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install_main(["--upgrade", str(hello_v1.newer_release)]) == 0
    assert "replaced hello 1.0-1 with 1.0-2" in capsys.readouterr().out
    assert listed(capsys)["hello"]["release"] == "2"
    assert hello_v1.override.read_text() == "[custom]\ngreeting = bonjour\n"
    assert env_of(rt, "hello")["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "bonjour"
    out = subprocess.run(
        [str(rt.plugin("hello") / "local" / "bin" / "alpha")], capture_output=True, text=True
    )
    assert out.stdout.strip() == "alpha 2.0"


def test_force_replaces_even_with_an_older_version(
    hello_v1: Versions, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install_main(["--force", str(hello_v1.older)]) == 0
    assert listed(capsys)["hello"]["version"] == "0.9"
    assert not (rt.plugin("hello") / "local" / "bin" / "alpha").exists()
    assert debris(rt) == []
    assert len(list(rt.venvs.iterdir())) == 1  # replaced virtualenvs are collected
    assert check_main(["hello"]) == 0


@pytest.fixture
def renamed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """hello installed, and the same file a second time as hello2; the file."""
    original = build_plugin(
        tmp_path, "hello", "1.0", custom={"greeting": "hello", "greeting[DEV]": "hi"}
    )
    assert install_main([str(original)]) == 0
    assert install_main(["--new-name", "hello2", str(original)]) == 0
    capsys.readouterr()
    return original


def test_new_name_installs_the_same_file_a_second_time(
    renamed: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    original = renamed
    assert install_main(["--new-name", "plugin_bad", str(original)]) == 1
    assert "invalid plugin name" in capsys.readouterr().err
    assert set(listed(capsys)) == {"hello", "hello2"}
    env = env_of(rt, "hello2")
    assert env["PLUGINS_CURRENT_PLUGIN_NAME"] == "hello2"
    assert env["PLUGINS_CURRENT_PLUGIN_GENERAL_NAME"] == "hello2"
    assert env["PLUGINS_CURRENT_PLUGIN_DIR"] == str(rt.plugin("hello2"))
    assert (rt.tmp / "hello2" / "postinstall.done").read_text().split()[0] == "hello2"
    assert check_main(["hello2"]) == 0
    capsys.readouterr()
    assert info_main(["hello2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metadata"]["name"] == "hello2"
    assert doc["metadata"]["original_name"] == "hello"
    assert doc["installed"]["installed_from"] == str(original)


def test_repackage_carries_the_installed_name_and_the_effective_configuration(
    renamed: Path, tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    rt.override("hello2").write_text("[custom]\ngreeting = salut\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert repackage_main(["hello2", "--output", str(out_dir)]) == 0
    repacked = Path(capsys.readouterr().out.strip())
    assert repacked.parent == out_dir and repacked.name.startswith("hello2-1.0-1.")
    assert info_main([str(repacked), "--json"]) == 0
    head = json.loads(capsys.readouterr().out)
    assert head["name"] == "hello2" and head["metadata"]["name"] == "hello2"
    assert {f["path"] for f in head["files"]} >= {"config.ini", "bin/hello", "docs/command"}
    assert uninstall_main(["hello2", "--clean"]) == 0
    assert not rt.override("hello2").exists()
    assert install_main([str(repacked)]) == 0
    env = env_of(rt, "hello2")
    assert env["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "salut"
    assert check_main(["hello2"]) == 0
    os.environ["PLUGIN_CONFIG_NAME"] = "DEV"
    try:  # a variant of the plugin stays below the override that replaced its key
        assert env_of(rt, "hello2")["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "salut"
        assert env_of(rt, "hello")["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "hi"
    finally:
        del os.environ["PLUGIN_CONFIG_NAME"]


def test_uninstall_keeps_the_override_unless_clean(
    tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    cron = "*/5 * * * * {{PLUGINS_CURRENT_PLUGIN_DIR}}/bin/hello\n"
    file = build_plugin(tmp_path, "hello", "1.0", crontab=cron)
    assert install_main([str(file)]) == 0
    crontab = rt.home / "config" / "crontab"
    assert f"{rt.plugin('hello')}/bin/hello" in crontab.read_text()
    rt.override("hello").write_text("[custom]\ngreeting = kept\n")
    assert uninstall_main(["hello"]) == 0
    assert not rt.plugin("hello").exists()
    assert list(rt.venvs.iterdir()) == []
    assert "bin/hello" not in crontab.read_text()
    assert not list((rt.home / "cache" / "env").glob("hello.*"))  # no cached env left
    assert rt.override("hello").read_text() == "[custom]\ngreeting = kept\n"
    assert uninstall_main(["hello"]) == 1
    assert "not installed" in capsys.readouterr().err

    assert install_main([str(file)]) == 0  # an existing override is never clobbered
    assert rt.override("hello").read_text() == "[custom]\ngreeting = kept\n"
    assert uninstall_main(["hello", "--clean"]) == 0
    assert not rt.override("hello").exists()
    assert debris(rt) == []


def test_devlink(tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_tree(tmp_path / "src" / "dev", "dev", "0.1")
    (source / "local" / "bin").mkdir(parents=True)
    assert install_main(["--devlink", str(source)]) == 0
    assert rt.plugin("dev").is_symlink()
    row = listed(capsys)["dev"]
    assert row["dev_link"] == str(source) and row["version"] == "0.1"
    assert install_main(["--devlink", str(source)]) == 0  # the same link again: nothing to do
    env = env_of(rt, "dev")
    assert env["PATH"].split(os.pathsep)[:2] == [
        str(rt.plugin("dev") / "bin"),
        str(rt.plugin("dev") / "local" / "bin"),
    ]
    # edits in the source are seen at once
    (source / "config.ini").write_text(
        (source / "config.ini").read_text().replace("greeting = hello", "greeting = edited")
    )
    assert env_of(rt, "dev")["PLUGINS_CURRENT_PLUGIN_CUSTOM_GREETING"] == "edited"
    assert check_main(["dev"]) == 1
    assert "devlinked" in capsys.readouterr().err

    # an artifact replaces the devlink only with --force, and a devlink replaces it back
    artifact = build_plugin(tmp_path, "dev", "0.2")
    assert install_main([str(artifact)]) == 1
    assert install_main(["--force", str(artifact)]) == 0
    assert not rt.plugin("dev").is_symlink()
    other = write_tree(tmp_path / "src2" / "dev", "dev", "0.3")
    assert install_main(["--devlink", str(other)]) == 1
    assert "--force" in capsys.readouterr().err
    assert install_main(["--devlink", str(other), "--force"]) == 0
    assert listed(capsys)["dev"]["dev_link"] == str(other)
    assert list(rt.venvs.iterdir()) == []

    assert uninstall_main(["dev"]) == 0
    assert "link only" in capsys.readouterr().out
    assert not rt.plugin("dev").exists() and (other / "config.ini").is_file()
    assert (other / "bin" / "dev").is_file()


def test_check_reports_modified_missing_and_extra_files(
    tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install_main([str(build_plugin(tmp_path, "hello", "1.0"))]) == 0
    home = rt.plugin("hello")
    (home / "lib" / "__pycache__").mkdir()
    (home / "lib" / "__pycache__" / "x.pyc").write_bytes(b"cache")  # not a change
    assert check_main(["hello"]) == 0
    capsys.readouterr()
    (home / "bin" / "hello").write_text("#!/bin/sh\necho tampered\n")
    (home / "crontab").unlink()
    (home / "lib" / "added.py").write_text("")
    (home / "postinstall").chmod(0o644)
    assert check_main(["hello"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "modified: bin/hello",
        "modified: postinstall",
        "missing: crontab",
        "extra: lib/added.py",
    ]
    assert err.startswith("ERROR: plugin hello: 2 modified, 1 missing, 1 extra")
    assert check_main(["nothere"]) == 1
    assert info_main(["nothere"]) == 1
    assert repackage_main(["hello", "--output", str(tmp_path)]) == 1
    assert "crontab is missing" in capsys.readouterr().err


def test_several_files_install_all_or_nothing(
    tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    good = build_plugin(tmp_path, "first", "1.0")
    bad = build_plugin(
        tmp_path, "second", "1.0", postinstall="#!/bin/sh\necho broken >&2\nexit 3\n"
    )
    assert install_main([str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "second" in err and "postinstall" in err and "exit 3" in err
    assert listed(capsys) == {}
    assert debris(rt) == [] and list(rt.venvs.iterdir()) == []
    second = build_plugin(tmp_path / "fixed", "second", "1.0")
    assert install_main([str(good), str(second)]) == 0
    assert set(listed(capsys)) == {"first", "second"}
    assert install_main(["--force", str(good), str(good)]) == 2
    assert "given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"meta": {"python_tag": "cp27"}}, "built for cp27"),
        ({"meta": {"platform": "plan9_mips"}}, "-plan9_mips; this host is"),
        ({"meta": {"version": "not.a.version!"}}, "not PEP 440"),
        ({"meta": {"format_version": 99}}, "upgrade the toolchain"),
        ({"meta": {"name": "other"}}, "metadata names 'other'"),
        ({"config": "[general]\nname = hello\n_version = 1.0\n[custom]\n"}, None),
        ({"config": "[general]\nname = hello\n_version = 1.0\nbogus = 1\n"}, "unknown key"),
        ({"config": "[general]\nname = other\n_version = 1.0\n"}, "config.ini names 'other'"),
        ({"config": "[general]\nname = hello\n_version = 1.0\n[nope]\n"}, "unknown section"),
        ({"postinstall": "#!/bin/sh\nexit 0\n", "files": {"local/x": ""}}, "local/"),
    ],
)
def test_invalid_artifacts_are_refused_before_any_change(
    tmp_path: Path,
    rt: Runtime,
    capsys: pytest.CaptureFixture[str],
    options: dict,
    message: str | None,
) -> None:
    file = build_plugin(tmp_path, "hello", "1.0", **options)
    code = install_main([str(file)])
    if message is None:  # the control case: a minimal config is fine
        assert code == 0
        return
    assert code == 1
    err = capsys.readouterr().err
    assert message in err
    assert str(file) in err or message == "local/"  # that one names the plugin
    assert listed(capsys) == {}
    assert debris(rt) == [] and list(rt.venvs.iterdir()) == []


def test_invalid_override_is_refused_with_its_path(
    tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    rt.overrides.mkdir(parents=True)
    rt.override("hello").write_text("[general]\n_version = 9\n")
    assert install_main([str(build_plugin(tmp_path, "hello", "1.0"))]) == 1
    err = capsys.readouterr().err
    assert str(rt.override("hello")) in err and "private" in err


def test_lock_timeout_is_an_error(
    tmp_path: Path, rt: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rt.home.mkdir(parents=True)
    monkeypatch.setenv("PLUGIN_LOCK_TIMEOUT", "0.2")

    def command(main: str, args: list[str]) -> subprocess.CompletedProcess[str]:
        # filelock locks are per process and re-entrant: contend from another one
        code = f"import sys; from toolchain.cli.plugins import {main} as m; sys.exit(m({args}))"
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[2],
        )

    with FileLock(str(rt.lock)):
        writer = command("uninstall_main", ["hello"])  # a writer waits for the writer
        reader = command("list_main", [])  # a reader does not
    assert writer.returncode == 1
    assert writer.stderr.startswith("ERROR: ") and "lock" in writer.stderr
    assert reader.returncode == 0, reader.stderr
    monkeypatch.setenv("PLUGIN_LOCK_TIMEOUT", "soon")
    assert uninstall_main(["hello"]) == 1
    assert "PLUGIN_LOCK_TIMEOUT" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install_main([]) == 2
    assert install_main(["--devlink", str(tmp_path), "x.plugin"]) == 2
    assert install_main(["--new-name", "a", "x.plugin", "y.plugin"]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.ini").write_text("[general]\nname = bad\n")
    assert install_main(["--devlink", str(tmp_path / "bad")]) == 1
    assert "_version" in capsys.readouterr().err
    assert not Runtime.current().home.exists()  # refused before the runtime is touched
    with pytest.raises(SystemExit) as exc:
        install_main(["--upgrade", "--force", "x.plugin"])
    assert exc.value.code == 2
    assert install_main([str(tmp_path / "missing.plugin")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert install_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a directory, not a .plugin file" in err and f"--devlink {tmp_path}" in err


def test_console_scripts_list_and_info(tmp_path: Path, rt: Runtime) -> None:
    bindir = Path(sys.executable).parent
    file = build_plugin(tmp_path, "hello", "1.0")
    info = subprocess.run(
        [str(bindir / "plugins.info"), str(file), "--json"], capture_output=True, text=True
    )
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["metadata"]["version"] == "1.0"
    listing = subprocess.run(
        [str(bindir / "plugins.list"), "--raw"], capture_output=True, text=True
    )
    assert listing.returncode == 0 and listing.stdout == ""
    missing = subprocess.run(
        [str(bindir / "plugins.uninstall"), "ghost"], capture_output=True, text=True
    )
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_a_plugin_named_like_an_option_is_refused_at_install(
    tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    # `plugin_wrapper -h -- CMD` would print usage and exit 0: its cron jobs would do nothing.
    file = build_plugin(tmp_path, "-h", "1.0")
    assert install_main([str(file)]) == 1
    err = capsys.readouterr().err
    assert "must not start with '-'" in err and len(err.strip().splitlines()) == 1
    assert install_main(["--new-name=-x", str(build_plugin(tmp_path, "ok", "1.0"))]) == 1
    assert "must not start with '-'" in capsys.readouterr().err
    assert not rt.plugins.exists() or list(rt.plugins.iterdir()) == []


def test_output_cut_short_by_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    many = {f"docs/page-{i:05d}.txt": "x" for i in range(3000)}  # more than a pipe holds
    file = build_plugin(tmp_path, "hello", "1.0", files=many)
    proc = subprocess.run(
        f"{Path(sys.executable).parent / 'plugins.info'} {file} | head -1",
        shell=True, capture_output=True, text=True, env=tool_env(),
    )  # fmt: skip
    assert proc.stdout.startswith("name: hello")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_a_huge_version_in_the_metadata_is_one_error(
    tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    file = build_plugin(tmp_path, "hello", "1.0", meta={"version": "1" * 1_000_000})
    assert install_main([str(file)]) == 1
    err = capsys.readouterr().err
    assert "is not PEP 440" in err and len(err) < 500 and "Traceback" not in err
    assert list(rt.plugins.iterdir()) == []


def test_info_of_a_truncated_or_altered_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = {f"docs/page-{i:04d}.txt": f"page {i}\n" * 200 for i in range(200)}
    file = build_plugin(tmp_path, "hello", "1.0", files=many)
    assert info_main([str(file)]) == 0
    assert "verified: 2" in capsys.readouterr().out  # every file was read and checked
    data = file.read_bytes()
    cut = tmp_path / "cut.plugin"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert info_main([str(cut)]) == 1
    err = capsys.readouterr().err
    assert "corrupt or truncated archive" in err and len(err.strip().splitlines()) == 1


def test_an_override_key_the_plugin_does_not_have_is_a_warning_naming_file_and_key(
    tmp_path: Path, rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    override = rt.override("hello")
    override.parent.mkdir(parents=True)
    override.write_text("[custom]\ngreting = hi\ngreeting[DEV] = yo\ngreeting = ok\n")
    file = build_plugin(tmp_path, "hello", "1.0", custom={"greeting": "hello"})
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "plugins.install"), str(file)],
        capture_output=True, text=True, env=tool_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert f"WARNING: {override}: [custom] greting: plugin hello has no such key" in err
    assert "greeting" not in err.replace("greting", "")  # the real key and its variant: fine
