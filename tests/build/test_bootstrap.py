"""`bootstrap_plugin.py list` and `create`, through the entry function and the console script."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.plugin_dirs import tool_env
from toolchain.build import template
from toolchain.cli.bootstrap import main
from toolchain.core.layout import makefile_plugin, templates_dir


def test_list_shows_templates_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = {line.split()[0]: line for line in lines}
    assert sorted(shown) == [t.name for t in template.available()]
    assert "_common" not in shown
    for t in template.available():
        assert t.description and t.description in shown[t.name]
    assert "python3 plugin with a command in bin/" in shown["default"]
    assert shown["default"].endswith("(default)")


def test_hidden_templates_are_not_listed(tmp_path: Path) -> None:
    for name in ("visible", "_hidden"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cookiecutter.json").write_text(
            json.dumps({"_name": "x", "_description": f"the {name} one"})
        )
    (tmp_path / "not-a-template").mkdir()
    assert [(t.name, t.description) for t in template.available(tmp_path)] == [
        ("visible", "the visible one")
    ]


def test_create_no_input_renders_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["create", "--no-input", "hello"]) == 0
    root = tmp_path / "hello"
    assert f"created: {root}" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [".autorestart_excludes", ".autorestart_includes", ".github", ".gitignore",
         ".gitlab-ci.yml", ".plugin_format_version", ".releaseignore", "Makefile", "README.md",
         "bin", "config.ini", "crontab", "postinstall", "python3_virtualenv_sources", "tests"]
    )  # fmt: skip
    assert os.access(root / "bin" / "hello", os.X_OK)
    assert os.access(root / "postinstall", os.X_OK)
    assert "name = hello\n_version = 0.1.0\n_release = 1\n" in (root / "config.ini").read_text()
    assert "[custom]\n" in (root / "config.ini").read_text()
    assert all(line.startswith("#") for line in (root / "crontab").read_text().splitlines() if line)
    assert (root / "Makefile").read_text() == "include $(shell toolchain-makefile-path)\n"
    assert (root / ".plugin_format_version").read_text().strip() == "1"
    assert "/local/" in (root / ".gitignore").read_text()
    assert (root / "python3_virtualenv_sources" / "allow_binary_packages").exists()


def test_create_prompts_for_each_field(tmp_path: Path) -> None:
    answers = "2.5\n3\nmy summary\nMIT\nhttps://x.org\nme <me@x.org>\nacme\n4\n"
    proc = subprocess.run(
        [sys.executable, "-m", "toolchain.cli.bootstrap", "create", "asked"],
        input=answers, capture_output=True, text=True, cwd=tmp_path, env=tool_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "asked" / "config.ini").read_text()
    expected = [
        "_version = 2.5",
        "_release = 3",
        "_summary = my summary",
        "_license = MIT",
        "_url = https://x.org",
        "_maintainer = me <me@x.org>",
        "_vendor = acme",
    ]
    for line in expected:
        assert line in text
    # The fourth CI choice is "none": no pipeline file.
    assert not (tmp_path / "asked" / ".gitlab-ci.yml").exists()
    assert not (tmp_path / "asked" / ".github").exists()


@pytest.mark.parametrize("name", ["bad name", "plugin_x", "base", "x" * 65])
def test_create_refuses_invalid_name_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["create", "--no-input", name]) == 1
    assert "invalid plugin name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_create_refuses_existing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "mine.txt").write_text("precious")
    assert main(["create", "--no-input", "hello"]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"ERROR: {tmp_path / 'hello'} already exists: add --delete to replace it, or "
        "choose another name\n"
    )
    assert [p.name for p in (tmp_path / "hello").iterdir()] == ["mine.txt"]


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under `root`: mode and content (a link's target), to compare byte for byte."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            data = os.readlink(path).encode()
        else:
            data = path.read_bytes() if path.is_file() else b""
        found[str(path.relative_to(root))] = (st.st_mode, data)
    return found


def _old_plugin(parent: Path) -> Path:
    """An existing ./hello: a plugin the developer wrote, with an executable and a link."""
    root = parent / "hello"
    (root / "bin").mkdir(parents=True)
    (root / "config.ini").write_text("[general]\nname = hello\n_version = 9.9\n")
    (root / "bin" / "hello").write_text("#!/bin/sh\necho mine\n")
    (root / "bin" / "hello").chmod(0o750)
    (root / "notes").mkdir()
    (root / "notes" / "mine.txt").write_text("precious")
    (root / "notes" / "link").symlink_to("mine.txt")
    return root


class _Terminal(io.StringIO):
    """Stdin as a terminal on which the user types the given text."""

    def isatty(self) -> bool:
        return True


def test_create_delete_no_input_replaces_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    root = _old_plugin(tmp_path)
    assert main(["create", "--no-input", "--delete", "--json", "hello"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["replaced"] is True and "Delete" not in out
    assert not (root / "notes").exists()
    assert "_version = 0.1.0\n" in (root / "config.ini").read_text()
    assert os.access(root / "postinstall", os.X_OK)
    assert [p.name for p in tmp_path.iterdir()] == ["hello"]  # no scratch nor old tree left


@pytest.mark.parametrize(
    ("typed", "replaced"),
    [("n\n", False), ("", False), ("yes\n" + "\n" * 8, True)],  # then 8 defaults
    ids=["no", "nothing", "yes"],
)
def test_create_delete_asks_first(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    typed: str,
    replaced: bool,
) -> None:
    monkeypatch.chdir(tmp_path)
    root = _old_plugin(tmp_path)
    before = _tree(root)
    files = sum(1 for p in root.rglob("*") if not p.is_dir() or p.is_symlink())
    monkeypatch.setattr(sys, "stdin", _Terminal(typed))
    assert main(["create", "--delete", "--set", "ci=none", "hello"]) == (0 if replaced else 1)
    captured = capsys.readouterr()
    assert f"Delete ./hello ({files} files) and create it again? [y/N] " in captured.out
    if replaced:
        assert not (root / "notes").exists() and (root / "bin" / "hello").is_file()
    else:
        assert captured.err == "ERROR: kept ./hello: nothing deleted (answer y to replace it)\n"
        assert _tree(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["hello"]


def test_create_delete_without_a_terminal_keeps_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    root = _old_plugin(tmp_path)
    before = _tree(root)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped: never read as an answer
    assert main(["create", "--delete", "hello"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "ERROR: kept ./hello: no terminal to confirm --delete on; add --no-input to replace it "
        "without asking\n"
    )
    assert "Delete" not in captured.out
    assert _tree(root) == before


@pytest.mark.parametrize("kind", ["link", "file"])
def test_create_delete_refuses_a_link_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    monkeypatch.chdir(tmp_path)
    target = _old_plugin(tmp_path / "elsewhere")
    before = _tree(target)
    if kind == "link":
        (tmp_path / "hello").symlink_to(target)
    else:
        (tmp_path / "hello").write_text("a file")
    assert main(["create", "--no-input", "--delete", "hello"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    said = "is a symbolic link" if kind == "link" else "exists and is not a directory"
    assert f"ERROR: {tmp_path / 'hello'} {said}: " in err
    assert (tmp_path / "hello").is_symlink() == (kind == "link")
    assert _tree(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "hello"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--template", "nope"], "unknown template 'nope'"),
        (["--set", "version=not-a-version"], "is not a PEP 440 version"),
        (["--set", "port=0", "--template", "web"], "port"),
    ],
)
def test_create_delete_keeps_the_old_tree_when_rendering_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    said: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    root = _old_plugin(tmp_path)
    before = _tree(root)
    assert main(["create", "--no-input", "--delete", *argv, "hello"]) == 1
    assert said in capsys.readouterr().err
    assert _tree(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["hello"]  # no scratch directory left


def test_create_delete_keeps_the_old_tree_when_the_swap_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    root = _old_plugin(tmp_path)
    before = _tree(root)
    rename = Path.rename

    def failing(self: Path, target: Path) -> Path:  # the new tree cannot be renamed in
        if Path(target) == root and self.parent.name == "out":
            raise OSError(28, "No space left on device")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    assert main(["create", "--no-input", "--delete", "hello"]) == 1
    err = capsys.readouterr().err
    assert "cannot rename the new plugin into place (No space left on device); kept" in err
    assert _tree(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["hello"]


def test_create_unknown_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["create", "--no-input", "--template", "nope", "hello"]) == 1
    known = ", ".join(t.name for t in template.available())
    assert f"unknown template 'nope': choose one of {known}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["create"])
    assert info.value.code == 2


@pytest.mark.slow
def test_create_make_builds_the_venv(tmp_path: Path) -> None:
    proc = subprocess.run(
        [Path(sys.executable).parent / "bootstrap_plugin.py", "create", "--no-input", "--make",
         "built"],
        capture_output=True, text=True, cwd=tmp_path, env=tool_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = tmp_path / "built"
    assert (root / "local" / "bin" / "python").exists()
    assert (root / "python3_virtualenv_sources" / "requirements3.txt").exists()


@pytest.mark.slow
def test_create_json_make_prints_the_json_alone(tmp_path: Path) -> None:
    proc = subprocess.run(
        [Path(sys.executable).parent / "bootstrap_plugin.py", "create", "--no-input", "--json",
         "--make", "quiet"],
        capture_output=True, text=True, cwd=tmp_path, env=tool_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)  # make's output went to stderr
    assert doc["name"] == "quiet" and doc["built"] is True
    assert "plugin-build" in proc.stderr


def test_created_plugin_holds_no_bytecode_of_the_templates(tmp_path: Path) -> None:
    # The installed toolchain's templates hold __pycache__ that pip compiled at install.
    proc = subprocess.run(
        [Path(sys.executable).parent / "bootstrap_plugin.py", "create", "--no-input", "clean"],
        capture_output=True, text=True, cwd=tmp_path, env=tool_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = [
        p for p in (tmp_path / "clean").rglob("*") if p.suffix == ".pyc" or p.name == "__pycache__"
    ]
    assert found == []


@pytest.mark.slow
def test_create_install_devlinks_the_plugin(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [bindir / "bootstrap_plugin.py", "create", "--no-input", "--install", "linked"],
        capture_output=True, text=True, cwd=tmp_path, env=tool_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installed in development mode: linked" in proc.stdout
    entry = Path(os.environ["PLUGIN_RUNTIME_HOME"]) / "plugins" / "linked"
    assert entry.is_symlink() and entry.resolve() == (tmp_path / "linked").resolve()
    ran = subprocess.run(
        [bindir / "plugin_wrapper", "linked", "--", "linked"],
        capture_output=True, text=True, env=tool_env(),
    )  # fmt: skip
    assert ran.returncode == 0 and ran.stdout.startswith("Hello from linked"), ran.stderr


def test_data_files_are_found(tmp_path: Path) -> None:
    assert (templates_dir() / "default" / "cookiecutter.json").is_file()
    assert makefile_plugin().is_file()
    script = shutil.which("toolchain-makefile-path", path=str(Path(sys.executable).parent))
    assert script, "the toolchain's console scripts are installed next to the interpreter"
    out = subprocess.run([script], capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).is_file()
    assert Path(out.strip()).name == "Makefile.plugin"
