"""`make test` runs this in the plugin env: the service beats, then stops on SIGTERM."""

import os
import signal
import subprocess
import unittest


class ServiceTest(unittest.TestCase):
    def test_heartbeat_then_clean_stop(self) -> None:
        module = os.environ.get("PLUGIN_MODULE", "plugins").upper()
        env = dict(os.environ, **{f"{module}_CURRENT_PLUGIN_CUSTOM_INTERVAL": "0.05"})
        with subprocess.Popen(
            ["{{ cookiecutter._name }}"], stdout=subprocess.PIPE, text=True, env=env
        ) as proc:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(3)]
            proc.send_signal(signal.SIGTERM)
            rest = proc.stdout.read()
        self.assertEqual(proc.returncode, 0)
        self.assertIn("started", lines[0])
        self.assertIn(os.environ[f"{module}_CURRENT_PLUGIN_CUSTOM_MESSAGE"], lines[1])
        self.assertIn("stopped", rest)


if __name__ == "__main__":
    unittest.main()
