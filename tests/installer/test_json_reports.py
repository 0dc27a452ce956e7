"""The operator commands' --json reports: one stable document on stdout, failures too.

What an automation (the Ansible collection, a CI job) reads instead of the human lines:
`{"schema": 1, "command", "changed", "plugins": [...]}`, and on failure
`{"schema": 1, "changed": false, "error", "details"}` with exit status 1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.installer.test_dependencies import plugin
from toolchain.cli.plugins import (
    info_main,
    install_main,
    provision_main,
    rollback_main,
    uninstall_main,
)


def _report(capsys: pytest.CaptureFixture[str], status: int, main: Any, *argv: str) -> Any:
    capsys.readouterr()
    assert main(["--json", *argv]) == status
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1
    return doc


def test_every_change_is_one_json_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2 = plugin(tmp_path / "a", "web", "1.0"), plugin(tmp_path / "b", "web", "2.0")
    would = _report(capsys, 0, install_main, "--dry-run", str(v1))
    assert would == {"schema": 1, "command": "install", "dry_run": True, "changed": False,
                     "pin_problems": [], "plugins": [{"name": "web", "version": "1.0",
                     "release": "1", "action": "install", "previous": None}]}  # fmt: skip
    assert _report(capsys, 0, install_main, str(v1)) == {
        "schema": 1, "command": "install", "changed": True, "plugins": [{"name": "web",
        "version": "1.0", "release": "1", "previous": None, "action": "installed"}]}  # fmt: skip
    done = _report(capsys, 0, install_main, "--upgrade", str(v2))
    assert done["plugins"] == [{"name": "web", "version": "2.0", "release": "1",
                                "previous": "1.0-1", "action": "replaced"}]  # fmt: skip
    # Refused: the error as a report too, and nothing else on stdout.
    refused = _report(capsys, 1, install_main, "--upgrade", str(v1))
    assert refused["changed"] is False and refused["details"] == []
    assert "2.0-1 is installed, and 1.0-1 is not newer" in refused["error"]
    back = _report(capsys, 0, rollback_main, "web")
    assert back == {"schema": 1, "command": "rollback", "changed": True, "plugins": [{
        "name": "web", "version": "1.0", "release": "1", "previous": "2.0-1",
        "action": "rolled_back"}]}  # fmt: skip

    fleet = tmp_path / "fleet"
    fleet.mkdir()
    shutil.copy(v2, fleet)
    plugin(fleet, "api", "3.0")
    decided = _report(capsys, 0, provision_main, "--dry-run", str(fleet))
    assert decided["changed"] is False and decided["dry_run"] is True
    assert [(p["name"], p["action"]) for p in decided["plugins"]] == [
        ("api", "install"), ("web", "upgrade")]  # fmt: skip
    assert _report(capsys, 0, provision_main, str(fleet))["changed"] is True
    again = _report(capsys, 0, provision_main, str(fleet))
    assert again["changed"] is False
    assert {p["action"] for p in again["plugins"]} == {"unchanged"}

    assert _report(capsys, 0, uninstall_main, "api") == {
        "schema": 1, "command": "uninstall", "changed": True,
        "plugins": [{"name": "api", "action": "uninstalled", "devlinked": False}]}  # fmt: skip
    missing = _report(capsys, 1, uninstall_main, "api")
    assert missing["command"] == "uninstall"
    assert "plugin 'api' is not installed" in missing["error"]
    nothing = _report(capsys, 1, rollback_main, "api")
    assert nothing["command"] == "rollback" and "not installed" in nothing["error"]
    usage = _report(capsys, 2, provision_main, str(tmp_path / "nosuch"))  # a usage error
    assert usage["command"] == "provision" and usage["changed"] is False and usage["error"]


def test_a_file_and_its_installed_copy_have_one_content_hash_whatever_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = plugin(tmp_path, "web", "1.0")
    capsys.readouterr()
    assert info_main(["--json", str(v1)]) == 0
    of_file = json.loads(capsys.readouterr().out)["content_hash"]
    assert len(of_file) == 64
    assert install_main([str(v1)]) == 0
    assert install_main(["--new-name", "web2", str(v1)]) == 0
    for name in ("web", "web2"):
        capsys.readouterr()
        assert info_main(["--json", name]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["installed"]["content_hash"] == of_file  # what was installed
    assert doc["content_hash"] != of_file  # web2's config.ini names web2 now
