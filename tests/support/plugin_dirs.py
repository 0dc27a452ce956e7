"""Plugin source directories rendered from the real templates, for the build-side tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from toolchain.build import template


def render_default(parent: Path, name: str = "hello", template_name: str = "default") -> Path:
    """Render a real template with --no-input defaults into `parent/name`."""
    return template.render(template.find(template_name), name, parent, no_input=True)


def set_requirements(plugin: Path, wheels: Path, *requirements: str) -> None:
    """Write requirements-to-freeze.txt pointing pip at the test wheels only."""
    lines = ["--no-index", f"--find-links {wheels}", *requirements]
    path = plugin / "python3_virtualenv_sources" / "requirements-to-freeze.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for running make and the console scripts of this installation."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env
