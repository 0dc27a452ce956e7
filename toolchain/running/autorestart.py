"""Development mode: restart a devlinked plugin's daemons when its source files change.

Runs as a program of the plugin's process group (`python -m toolchain.running.autorestart NAME
DIR`). A change to a file matching `.autorestart_includes` and not
`.autorestart_excludes` (gitignore syntax) restarts the plugin's daemons, once per burst
of changes; new sub-directories are watched too. An edit of either pattern file takes
effect at once (the patterns are read again; the edit itself restarts nothing). Only
the watcher process imports this module, so the installer never loads pathspec nor
watchdog.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Any

INCLUDES = ".autorestart_includes"
EXCLUDES = ".autorestart_excludes"
# Changes closer together than this are one burst: one restart.
QUIET = 0.5
# Generated or version-control trees, never a reason to restart.
ALWAYS_IGNORED = ["/local/", "/.wheelhouse/", ".git/", "__pycache__/", "*.plugin", "*.pyc"]


class Matcher:
    """Decides whether a changed path of the plugin restarts its daemons."""

    def __init__(self, root: Path) -> None:
        import pathspec

        self.root = root
        include_lines = _lines(root / INCLUDES)
        self.includes = pathspec.GitIgnoreSpec.from_lines(
            include_lines if include_lines is not None else ["*"]
        )
        self.excludes = pathspec.GitIgnoreSpec.from_lines(
            ALWAYS_IGNORED + (_lines(root / EXCLUDES) or [])
        )

    def relative(self, path: str) -> str | None:
        """`path` relative to the plugin root, POSIX style; None when outside it."""
        try:
            rel = os.path.relpath(path, self.root)
        except ValueError:
            return None
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None
        return rel.replace(os.sep, "/")

    def matches(self, rel: str) -> bool:
        """Whether a change of the file `rel` restarts the daemons."""
        return bool(self.includes.match_file(rel)) and not self.excludes.match_file(rel)


def _lines(path: Path) -> list[str] | None:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None


def daemon_programs(home: Path, plugin: str) -> list[str]:
    """The daemon programs of `plugin`, from its program spec."""
    from toolchain.running.programs import config_dir

    try:
        doc = json.loads((config_dir(home) / f"{plugin}.json").read_text(encoding="utf-8"))
        return sorted(str(entry["program"]) for entry in doc["daemons"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _state(path: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a file; None once it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)


def watch(home: Path, plugin: str, root: Path) -> None:
    """Watch `root` until SIGTERM; restart the plugin's daemons after matching changes."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    from toolchain.running.supervisor import restart_programs

    real_root = root.resolve()  # a devlink: watchdog reports paths under the real tree
    current = [Matcher(real_root)]  # replaced, in the observer's thread, on a pattern edit
    changes: queue.Queue[str] = queue.Queue()

    # One write shows up as several events (created, modified, closed; those of a new
    # directory's files may be synthesized and then seen again): a file whose size and
    # mtime did not change since its last event is not a new change.
    seen: dict[str, tuple[int, int] | None] = {}

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.is_directory or event.event_type in ("opened", "closed_no_write"):
                return
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                path = os.fsdecode(raw) if raw else ""
                if not path:
                    continue
                matcher = current[0]
                rel = matcher.relative(path)
                if rel in (INCLUDES, EXCLUDES):
                    current[0] = Matcher(real_root)
                    _log(f"patterns read again: {rel} changed")
                    continue
                if rel is None or not matcher.matches(rel):
                    continue
                state = _state(path)
                if rel in seen and seen[rel] == state:
                    continue
                seen[rel] = state
                changes.put(rel)

    stop = False

    def on_term(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    observer = Observer()
    observer.schedule(Handler(), str(real_root), recursive=True)
    observer.start()
    _log(f"watching {root} for plugin {plugin}")
    try:
        while not stop:
            try:
                first = changes.get(timeout=0.5)
            except queue.Empty:
                continue
            changed = {first}
            while True:
                try:
                    changed.add(changes.get(timeout=QUIET))
                except queue.Empty:
                    break
            programs = daemon_programs(home, plugin)
            _log(f"changed: {', '.join(sorted(changed))}")
            try:
                restarted = restart_programs(home, plugin, programs)
            except Exception as exc:  # keep watching: the next change retries
                _log(f"restart failed: {exc}")
                continue
            _log(f"restarted: {', '.join(restarted) or 'nothing'}")
    finally:
        observer.stop()
        observer.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the watcher program."""
    from toolchain.core.layout import runtime_home

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m toolchain.running.autorestart PLUGIN DIR", file=sys.stderr)
        return 2
    watch(runtime_home(), args[0], Path(args[1]).absolute())
    return 0


if __name__ == "__main__":
    sys.exit(main())
