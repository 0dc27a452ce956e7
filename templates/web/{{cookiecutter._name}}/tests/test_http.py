"""`make test` runs this in the plugin env: the service answers /health on a free port."""

import json
import os
import socket
import subprocess
import time
import unittest
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServiceTest(unittest.TestCase):
    def test_health_answers_ok(self) -> None:
        module = os.environ.get("PLUGIN_MODULE", "plugins").upper()
        port = free_port()
        listen = {f"{module}_CURRENT_PLUGIN_EXTRA_DAEMON_WEB_LISTEN": f"127.0.0.1:{port}"}
        env = dict(os.environ, **listen)
        proc = subprocess.Popen(["{{ cookiecutter._name }}"], env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as answer:
                        health = json.load(answer)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
        self.assertEqual(health["status"], "ok")
        self.assertEqual(proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
