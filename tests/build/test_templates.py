"""The templates: the shared `_common` part, the answers the hooks refuse, the CI pipelines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolchain.build import template
from toolchain.cli.bootstrap import main
from toolchain.cli.build import main as build_main
from toolchain.core.errors import TemplateError

pytestmark = pytest.mark.slow  # each rendering runs the hooks in two python processes

TEMPLATES = [t.name for t in template.available()]


def _render(parent: Path, name: str, **answers: str) -> Path:
    return template.render(template.find(name), "tpl", parent, no_input=True, answers=answers)


def _readme_ci_commands(plugin: Path) -> list[str]:
    """The indented block of the README's "Release in CI" section."""
    text = (plugin / "README.md").read_text()
    section = text.split("\n## Release in CI\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n\n((?:    \S.*\n)+)", section)
    assert block, "the README lists the CI commands in an indented block"
    return [line[4:] for line in block[1].splitlines()]


def _github_commands(doc: dict[Any, Any]) -> list[str]:
    (job,) = doc["jobs"].values()
    # One step runs the whole list in one shell, as GitLab runs its script.
    (block,) = [step["run"] for step in job["steps"] if "run" in step]
    return block.splitlines()


@pytest.mark.parametrize("name", TEMPLATES)
def test_ci_pipelines_are_yaml_and_run_what_the_readme_documents(tmp_path: Path, name: str) -> None:
    plugin = _render(tmp_path, name, toolchain="plugin-toolchain @ x")
    documented = _readme_ci_commands(plugin)
    setup = [c for c in documented if "toolchain" in c]
    assert setup == [  # into a virtualenv (PEP 668), from $PLUGIN_TOOLCHAIN
        "python3 -m venv .toolchain",
        '.toolchain/bin/python -m pip install "$PLUGIN_TOOLCHAIN"',
        'export PATH="$PWD/.toolchain/bin:$PATH"',
    ]
    assert "make test" in documented
    assert "SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) make release" in documented

    github = yaml.safe_load((plugin / ".github" / "workflows" / "release.yml").read_text())
    assert _github_commands(github) == documented
    assert github[True]["push"]["tags"]  # YAML 1.1 reads the key `on` as True
    upload = github["jobs"]["release"]["steps"][-1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "*.plugin"

    gitlab = yaml.safe_load((plugin / ".gitlab-ci.yml").read_text())
    assert gitlab["release"]["script"] == documented
    assert gitlab["release"]["artifacts"]["paths"] == ["*.plugin"]
    assert gitlab["release"]["variables"]["PLUGIN_TOOLCHAIN"] == "plugin-toolchain @ x"
    assert "vars.PLUGIN_TOOLCHAIN || 'plugin-toolchain @ x'" in github["env"]["PLUGIN_TOOLCHAIN"]
    assert github["env"]["PLUGIN_REPOSITORY"] == "${{ vars.PLUGIN_REPOSITORY }}"
    assert ".toolchain/" in (plugin / ".releaseignore").read_text()


@pytest.mark.parametrize(
    ("choice", "github", "gitlab"),
    [("github", True, False), ("gitlab", False, True), ("none", False, False)],
)
def test_ci_choice_keeps_only_the_chosen_pipelines(
    tmp_path: Path, choice: str, github: bool, gitlab: bool
) -> None:
    plugin = _render(tmp_path, "default", ci=choice)
    assert (plugin / ".github" / "workflows" / "release.yml").exists() == github
    assert (plugin / ".gitlab-ci.yml").exists() == gitlab
    readme = (plugin / "README.md").read_text()
    assert ("## Release in CI" in readme) == (choice != "none")
    assert (".github/workflows/release.yml" in readme) == github


def test_node_pipelines_set_up_node(tmp_path: Path) -> None:
    plugin = _render(tmp_path, "node")
    github = yaml.safe_load((plugin / ".github" / "workflows" / "release.yml").read_text())
    assert any(
        s.get("uses", "").startswith("actions/setup-node@")
        for s in github["jobs"]["release"]["steps"]
    )
    gitlab = yaml.safe_load((plugin / ".gitlab-ci.yml").read_text())
    assert gitlab["release"]["image"] == "python:3.11"  # an official image
    assert gitlab["release"]["script"][0].startswith("command -v npm >/dev/null || ")


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"version": "one"}, "version 'one' is not a PEP 440 version"),
        ({"release": "0"}, "release '0' is not a positive integer"),
        ({"url": "ftp://x"}, "url 'ftp://x' is not an http(s) URL"),
        ({"port": "70000"}, "port '70000' is not a whole number from 1 to 65535"),
        ({"workers": "0"}, "workers '0' is not a whole number from 1 to 256"),
    ],
)
def test_pre_generation_hook_refuses_bad_answers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    answers: dict[str, str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    sets = [f"--set={k}={v}" for k, v in answers.items()]
    assert main(["create", "--no-input", "--template", "web", *sets, "tpl"]) == 1
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if "ERROR" in line]
    assert len(errors) == 1, err  # one line: what is wrong and what to do
    assert message in errors[0] and "run create again" in errors[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_set_needs_key_and_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["create", "--no-input", "--set", "novalue", "tpl"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_set_of_an_unknown_field_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["create", "--no-input", "--set", "colour=red", "tpl"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "colour" in err and "version" in err and "ci" in err
    assert main(["create", "--no-input", "--template", "web", "--set", "prot=80", "w"]) == 2
    assert "port" in capsys.readouterr().err  # the web template's own fields are listed
    assert list(tmp_path.iterdir()) == []


def _write_template(root: Path, name: str, files: dict[str, str], **spec: str) -> None:
    base = root / name
    (base / "{{cookiecutter._name}}").mkdir(parents=True)
    (base / "cookiecutter.json").write_text(json.dumps(spec))
    for rel, text in files.items():
        (base / "{{cookiecutter._name}}" / rel).write_text(text)


def test_common_files_are_rendered_under_the_template(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    _write_template(
        root, "_common",
        {"shared.txt": "shared by {{ cookiecutter._name }} {{ cookiecutter.flavour }}\n",
         "over.txt": "from _common\n"},
        _name="x", flavour="plain", extra="kept",
    )  # fmt: skip
    _write_template(
        root, "mine", {"over.txt": "from mine, {{ cookiecutter.extra }}\n"},
        _description="my template", flavour="spicy",
    )  # fmt: skip
    assert [(t.name, t.description) for t in template.available(root)] == [("mine", "my template")]
    out = template.render(template.find("mine", root), "p1", tmp_path / "out", no_input=True)
    assert (out / "shared.txt").read_text() == "shared by p1 spicy\n"
    assert (out / "over.txt").read_text() == "from mine, kept\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p1"]


def test_rendering_failure_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    _write_template(root, "broken", {"f.txt": "{{ cookiecutter.undefined_field }}\n"}, _name="x")
    with pytest.raises(TemplateError, match="template 'broken'"):
        template.render(template.find("broken", root), "p1", tmp_path / "out", no_input=True)
    assert list((tmp_path / "out").iterdir()) == []


def test_list_and_create_print_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == TEMPLATES
    assert all(r["description"] for r in rows)
    assert [r["name"] for r in rows if r["default"]] == ["default"]
    monkeypatch.chdir(tmp_path)
    assert main(["create", "--no-input", "--json", "--template", "web", "tpl"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"name": "tpl", "template": "web", "path": str(tmp_path / "tpl"),
                   "built": False, "devlinked": False, "replaced": False}  # fmt: skip
    assert build_main(["-C", str(tmp_path / "tpl"), "--json", "test"]) == 1  # no local/ yet
    (tmp_path / "tpl" / "tests" / "test_http.py").unlink()
    (tmp_path / "tpl" / "tests").rmdir()
    assert build_main(["-C", str(tmp_path / "tpl"), "--json", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == "test"
