"""Health checks: a plugin's `healthcheck` run in its plugin env, a daemon's
`healthcheck_url` on the loopback, and what `plugins.status` says and exits with."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.plugin_factory import config_ini, metadata, pack, write_tree
from toolchain.cli.plugins import install_main
from toolchain.cli.services import status_main
from toolchain.core.layout import METADATA, Runtime
from toolchain.running import health


def _release(tmp_path: Path, name: str, version: str, check: str | None, extra: str = "") -> Path:
    tree = write_tree(tmp_path / f"src-{name}-{version}", name, version,
                      config=config_ini(name, version) + extra)  # fmt: skip
    if check is not None:
        (tree / "healthcheck").write_text(check)
        (tree / "healthcheck").chmod(0o755)
    return pack(tree, tmp_path / f"{name}-{version}.plugin", metadata(name, version))


def test_a_healthcheck_runs_in_the_plugin_env_and_sets_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = "#!/bin/sh\necho checked $PLUGINS_CURRENT_PLUGIN_NAME\n"
    assert install_main([str(_release(tmp_path, "hello", "1.0", ok))]) == 0
    assert install_main([str(_release(tmp_path, "plain", "1.0", None))]) == 0
    capsys.readouterr()
    assert status_main([]) == 0
    out = capsys.readouterr().out
    assert "hello: health ok" in out and "check healthcheck: ok: checked hello" in out
    assert "plain: health none" in out
    failing = "#!/bin/sh\necho db down\nexit 3\n"
    # An upgrade that fails its check is swapped back by itself: exit 1, output shown.
    assert install_main(["--upgrade", str(_release(tmp_path, "hello", "2.0", failing))]) == 1
    err = capsys.readouterr().err
    assert "  healthcheck: db down\n  healthcheck: exit status 3\n" in err, err
    assert err.strip().splitlines()[-1] == (
        "ERROR: plugin hello 2.0-1 failed its health checks (healthcheck: db down / exit "
        "status 3); 1.0-1 is back in place. Fix the release, then upgrade again"
    )
    assert json.loads((Runtime.current().plugin("hello") / METADATA).read_text())[
        "version"] == "1.0"  # fmt: skip
    assert status_main(["hello"]) == 0
    # A first install has nothing to go back to: it stays, and is said to be failing.
    assert install_main([str(_release(tmp_path, "sick", "1.0", failing))]) == 0
    capsys.readouterr()
    assert status_main([]) == 1
    out, err = capsys.readouterr()
    assert "sick: health failing" in out
    assert err.strip().splitlines() == [
        "ERROR: 1 plugin(s) failing their health checks: sick (sick healthcheck: db down / "
        "exit status 3)"
    ]
    assert status_main(["--json", "sick"]) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown == [{"plugin": "sick", "daemons": [], "health": {"state": "failing", "checks": [
        {"check": "healthcheck", "ok": False, "output": "db down\nexit status 3"}]}}]  # fmt: skip
    assert status_main(["plain"]) == 0
    assert status_main(["nosuch"]) == 1
    assert "plugin nosuch is not installed" in capsys.readouterr().err


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/health" else 503
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"fine\n" if code == 200 else b"starting\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    """An HTTP server on the loopback: /health answers 200, anything else 503."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_a_daemon_s_healthcheck_url_must_answer_2xx_in_time(tmp_path: Path, server: int) -> None:
    rt = Runtime.current()
    section = "\n[extra_daemon_web]\n_cmd_and_args = sleep 1000\n"
    url = f"healthcheck_url = http://127.0.0.1:{server}/health\n"
    assert install_main([str(_release(tmp_path, "web", "1.0", None, section + url))]) == 0
    found = health.check(rt.home, "web")
    assert found.state == "ok" and "HTTP 200" in found.checks[0].output
    override = rt.override("web")
    override.write_text(f"[extra_daemon_web]\nhealthcheck_url = http://127.0.0.1:{server}/x\n")
    found = health.check(rt.home, "web")
    assert found.state == "failing" and "HTTP 503" in found.checks[0].output
    # a listener that never answers: the timeout, not a hang
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    with silent:
        port = silent.getsockname()[1]
        override.write_text(
            f"[extra_daemon_web]\nhealthcheck_url = http://localhost:{port}/\n"
            "healthcheck_timeout = 1\n"
        )
        found = health.check(rt.home, "web")
    assert found.state == "failing" and "timed out" in found.checks[0].output


def test_a_health_url_off_the_loopback_is_refused_at_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = "\n[extra_daemon_web]\n_cmd_and_args = sleep 1000\n"
    bad = section + "healthcheck_url = http://192.0.2.1/health\n"
    capsys.readouterr()
    assert install_main([str(_release(tmp_path, "web", "1.0", None, bad))]) == 1
    err = capsys.readouterr().err
    assert "healthcheck_url: 'http://192.0.2.1/health' is not an http URL on the loopback" in err


def test_a_healthcheck_that_hangs_or_cannot_run_is_failing_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = Runtime.current()
    child = tmp_path / "child.pid"
    hangs = f"#!/bin/sh\necho waiting for the database\nsleep 30 &\necho $! > {child}\nwait\n"
    assert install_main([str(_release(tmp_path, "slow", "1.0", hangs))]) == 0
    monkeypatch.setenv("PLUGIN_HEALTHCHECK_TIMEOUT", "1")
    started = time.monotonic()
    found = health.check(rt.home, "slow")
    assert time.monotonic() - started < 10
    pid = int(child.read_text())
    deadline = time.monotonic() + 5  # what the check started goes with it, not left behind
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, f"pid {pid} outlived its healthcheck"
        time.sleep(0.05)
    assert found.state == "failing"
    assert found.checks[0].output == "waiting for the database\nno answer within 1s"
    script = rt.plugin("slow") / "healthcheck"
    script.chmod(0o644)
    found = health.check(rt.home, "slow")
    assert found.state == "failing" and "is not executable (chmod +x it)" in found.checks[0].output


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_a_plugin_whose_env_cannot_be_computed_fails_alone_in_the_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install_main([str(_release(tmp_path, "fine", "1.0", None))]) == 0
    assert install_main([str(_release(tmp_path, "dns", "1.0", None))]) == 0
    override = Runtime.current().home / "config" / "plugins" / "dns.ini"
    override.write_text("[custom]\ndb_hostname = no..such\n")  # after the install
    capsys.readouterr()
    assert status_main(["--json"]) == 1
    out, err = capsys.readouterr()
    rows = {row["plugin"]: row["health"] for row in json.loads(out)}
    assert rows["fine"]["state"] == "none"
    assert rows["dns"]["state"] == "failing"
    assert "'no..such' does not resolve" in rows["dns"]["checks"][0]["output"]
    assert err.startswith("ERROR: 1 plugin(s) failing their health checks: dns (dns plugin env")
    assert status_main(["--metrics"]) == 0  # the values say it
    metrics = capsys.readouterr().out
    assert 'plugin_health_ok{plugin="dns"} 0\n' in metrics
    assert 'plugin_health_ok{plugin="fine"} 1\n' in metrics
