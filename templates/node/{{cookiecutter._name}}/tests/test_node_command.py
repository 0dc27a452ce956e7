"""`make test` runs this in the plugin env: node runs the command with its dependencies."""

import json
import os
import subprocess
import unittest
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent


class NodeCommandTest(unittest.TestCase):
    def test_dependencies_resolve_from_local_node_modules(self) -> None:
        out = subprocess.run(
            ["{{ cookiecutter._name }}"], capture_output=True, text=True, check=True
        ).stdout
        self.assertIn(" node v", out)
        manifest = json.loads((PLUGIN / "node_sources" / "package.json").read_text())
        modules = os.path.join(PLUGIN, "local", "node_modules")
        for name in manifest.get("dependencies", {}):
            self.assertIn(f"uses {name} ", out)
            self.assertIn(modules, out)


if __name__ == "__main__":
    unittest.main()
