"""The CI pipelines install the toolchain from where it was installed here (PEP 610)."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

import pytest

from toolchain.build import toolchain_source


class Dist:
    """A stand-in distribution whose `direct_url.json` is `doc` (None: installed by name)."""

    version = "1.2.3"

    def __init__(self, doc: dict[str, Any] | None) -> None:
        self.doc = doc

    def read_text(self, name: str) -> str | None:
        return json.dumps(self.doc) if name == "direct_url.json" and self.doc else None


@pytest.mark.parametrize(
    ("doc", "expected", "local"),
    [
        (None, "plugin-toolchain==1.2.3", False),
        (
            {"url": "https://github.com/o/tc", "vcs_info": {"vcs": "git", "commit_id": "abc"}},
            "plugin-toolchain @ git+https://github.com/o/tc@abc",
            False,
        ),
        (
            {"url": "https://x.org/plugin_toolchain-1.2.3-py3-none-any.whl", "archive_info": {}},
            "plugin-toolchain @ https://x.org/plugin_toolchain-1.2.3-py3-none-any.whl",
            False,
        ),
        (
            {"url": "file:///src/toolchain", "dir_info": {}},
            "plugin-toolchain @ file:///src/toolchain",
            True,
        ),
    ],
)
def test_requirement_follows_direct_url_json(
    monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any] | None, expected: str, local: bool
) -> None:
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(doc))
    requirement = toolchain_source.requirement()
    assert requirement == expected
    said = toolchain_source.warning(requirement)
    assert (said is not None) == local
    if said:
        assert "PLUGIN_TOOLCHAIN" in said and "--set toolchain=" in said


def test_installed_toolchain_has_a_requirement() -> None:
    assert toolchain_source.requirement().startswith("plugin-toolchain")
