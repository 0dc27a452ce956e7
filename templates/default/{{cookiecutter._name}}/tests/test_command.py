"""`make test` runs this in the plugin env: the command prints the configured greeting."""

import os
import subprocess
import unittest


class CommandTest(unittest.TestCase):
    def test_prints_the_greeting(self) -> None:
        module = os.environ.get("PLUGIN_MODULE", "plugins").upper()
        greeting = os.environ[f"{module}_CURRENT_PLUGIN_CUSTOM_GREETING"]
        out = subprocess.run(
            ["{{ cookiecutter._name }}"], capture_output=True, text=True, check=True
        ).stdout
        self.assertIn(greeting, out)


if __name__ == "__main__":
    unittest.main()
