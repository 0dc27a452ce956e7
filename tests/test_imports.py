"""Every module imports alone (no cycles), and the operator side needs no build-side library."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import toolchain

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(toolchain.__path__, "toolchain.")
    if not m.name.startswith("toolchain._data")
)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_in_a_fresh_interpreter(module: str) -> None:
    argv = [sys.executable, "-c", f"import {module}"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_operator_commands_import_nothing_of_the_build_side() -> None:
    code = (
        "import sys\n"
        "import toolchain.cli.plugins, toolchain.cli.wrapper, toolchain.installer.install\n"
        "import toolchain.installer.rollback, toolchain.installer.provision\n"
        "import toolchain.installer.inspection\n"
        "build = ('cookiecutter', 'piptools', 'pathspec', 'toolchain.build.template',\n"
        "         'toolchain.build.freeze', 'toolchain.build.release',\n"
        "         'toolchain.build.releaseignore', 'toolchain.artifact.pack')\n"
        "print(sorted(m for m in build if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
