"""Whether an installed plugin works: its checks, run now.

A plugin may ship an executable `healthcheck` at its root: it runs in the plugin env
(exit 0: healthy; its last lines of output are kept), within `$PLUGIN_HEALTHCHECK_TIMEOUT`
seconds (default 30). Any daemon section may name `healthcheck_url`, an http URL on the
loopback (or a path, on the daemon's `listen` address) that must answer 2xx within
`healthcheck_timeout` seconds (default 10); no proxy is asked. A plugin with neither has
no health (`none`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.core import listen, settings
from toolchain.core.layout import Runtime
from toolchain.running import services

HEALTHCHECK = "healthcheck"
_TAIL = 20  # lines of a check's output kept


@dataclass(frozen=True)
class Check:
    """One check and how it went."""

    name: str  # `healthcheck`, or the daemon section of a URL
    ok: bool
    output: str


@dataclass
class Health:
    """A plugin's health: `ok`, `failing` or `none` (it has no check)."""

    checks: list[Check] = field(default_factory=list)

    @property
    def state(self) -> str:
        if not self.checks:
            return "none"
        return "ok" if all(c.ok for c in self.checks) else "failing"

    def as_dict(self) -> dict[str, Any]:
        rows = [{"check": c.name, "ok": c.ok, "output": c.output} for c in self.checks]
        return {"state": self.state, "checks": rows}


def _tail(text: str) -> str:
    return "\n".join(line for line in text.strip().splitlines()[-_TAIL:] if line.strip())


def _script(home: Path, name: str, env: dict[str, str]) -> Check | None:
    plugin_dir = Runtime(home).plugin(name)
    script = plugin_dir / HEALTHCHECK
    if not script.is_file():
        return None
    if not os.access(script, os.X_OK):
        return Check(HEALTHCHECK, False, f"{script} is not executable (chmod +x it)")
    timeout = settings.healthcheck_timeout()
    try:
        # Its own process group: what it starts (curl, psql...) goes with it on a timeout.
        proc = subprocess.Popen(
            [str(script)], cwd=plugin_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        return Check(HEALTHCHECK, False, f"cannot run {script}: {exc.strerror or exc}")
    try:
        out, _err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _err = proc.communicate()
        said = out.decode("utf-8", "replace")
        return Check(HEALTHCHECK, False, _tail(f"{said}\nno answer within {timeout:g}s"))
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out)
    said = done.stdout.decode("utf-8", "replace").rstrip()
    if done.returncode != 0:
        said = f"{said}\nexit status {done.returncode}"
    return Check(HEALTHCHECK, done.returncode == 0, _tail(said))


def _url(section: str, url: str, timeout: float) -> Check:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the loopback only
    try:
        with opener.open(url, timeout=timeout) as answer:
            status = int(answer.status)
            body = answer.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return Check(section, False, f"GET {url}: HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(section, False, f"GET {url}: {reason}")
    return Check(section, 200 <= status < 300, _tail(f"GET {url}: HTTP {status}\n{body}"))


def check(
    home: Path,
    name: str,
    around_urls: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
) -> Health:
    """Run the checks of the installed plugin `name` now; each URL request within
    `around_urls()` (an upgrade pauses the old workers there)."""
    env = services.environment(home, name)
    health = Health()
    script = _script(home, name, env)
    if script is not None:
        health.checks.append(script)
    for section, keys in sorted(services.effective_config(home, name, env).items()):
        url = keys.get("healthcheck_url", "").strip()
        if not url:
            continue
        try:
            url = listen.health_url(url, keys.get("listen", "").strip())
        except ValueError as exc:
            health.checks.append(Check(section, False, str(exc)))
            continue
        timeout = float(keys.get("healthcheck_timeout") or 10)
        with around_urls():
            health.checks.append(_url(section, url, timeout))
    return health
