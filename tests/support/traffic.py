"""A bounded HTTP client loop: what a web plugin's users see while it is upgraded."""

from __future__ import annotations

import collections
import threading
import time
import urllib.request


class Traffic:
    """Threads sending `GET url` one connection after another, until `stop`, `limit`
    requests or `seconds` have gone by; each answer body (or failure) is kept in order."""

    def __init__(self, url: str, *, threads: int = 2, limit: int = 5000, seconds: float = 60):
        self.url, self.limit = url, limit
        self.deadline = time.monotonic() + seconds
        self.answers: list[tuple[float, str]] = []  # (time, body) of every success
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _done(self) -> bool:
        return (
            self._stop.is_set()
            or time.monotonic() > self.deadline
            or len(self.answers) + len(self.failures) >= self.limit
        )

    def _run(self) -> None:
        while not self._done():
            try:
                with urllib.request.urlopen(self.url, timeout=30) as answer:
                    body = answer.read().decode().strip()
                with self._lock:
                    self.answers.append((time.monotonic(), body))
            except Exception as exc:  # refused, reset, a broken answer: all failures
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)

    def counts(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(body for _t, body in self.answers)

    def since(self, moment: float) -> collections.Counter[str]:
        """The answers received after `moment` (time.monotonic())."""
        with self._lock:
            return collections.Counter(body for t, body in self.answers if t > moment)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
