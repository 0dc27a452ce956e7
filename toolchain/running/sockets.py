"""The runtime's listening sockets: bound once by the process manager, handed to workers.

A daemon section may name `listen = HOST:PORT`. supervisord itself holds that socket: this
module runs inside it (an `rpcinterface` extension whose thread starts once supervisord
runs) and binds each address once, without SO_REUSEPORT. A worker's `daemon_exec` asks for
it over a private unix socket and gets a duplicate (SCM_RIGHTS), which it passes on as
fd 3 the way systemd does (`LISTEN_FDS=1`, `LISTEN_PID`, `LISTEN_FDNAMES`).

So the old and the new workers of an upgrade accept from one queue: while either runs, the
port listens, and a connection waiting in the queue is served by whichever accepts it,
never reset with a closing listener's queue (what two SO_REUSEPORT sockets do). A port is
one plugin's: another plugin naming it, another runtime or any other program is refused
with `EADDRINUSE`, naming who holds the port. A socket no program file names any more is
closed within seconds. The sockets live until supervisord stops or reloads (which stops
every worker first).
"""

from __future__ import annotations

import array
import json
import os
import select
import socket
import threading
from pathlib import Path
from typing import Any

from toolchain.core.errors import ProcessManagerError
from toolchain.core.listen import parse

FD = 3  # where a worker finds its socket (SD_LISTEN_FDS_START)
_MAX_REQUEST = 4096


def holder(port: int) -> str:
    """Who listens on TCP `port` on this host, as far as this user can see."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") not in inodes:
                    continue  # (an fd closed meanwhile is skipped, not its process)
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            return f"pid {pid} ({cmd.decode(errors='replace').strip()[:100]})"
    return "a process of another user" if inodes else "an unknown process"


def declared(spec_dir: Path) -> dict[str, set[str]]:
    """{address: plugins naming it} from the program specs (`supervisor.d/*.json`)."""
    found: dict[str, set[str]] = {}
    for spec in sorted(spec_dir.glob("*.json")):
        try:
            doc = json.loads(spec.read_text(encoding="utf-8"))
            for entry in doc["daemons"].values():
                if entry.get("listen"):
                    found.setdefault(str(entry["listen"]), set()).add(str(doc["plugin"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being rewritten: the next look sees it
    return found


class Holder:
    """The sockets of one runtime, and the unix socket workers ask them on."""

    def __init__(self, path: Path, spec_dir: Path) -> None:
        self.path, self.spec_dir = path, spec_dir
        self.held: dict[str, tuple[str, socket.socket]] = {}  # address -> (plugin, socket)
        self.lock = threading.Lock()
        self.closed = threading.Event()
        path.unlink(missing_ok=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        os.chmod(path, 0o600)
        self.server.listen(64)

    def get(self, plugin: str, address: str) -> socket.socket:
        """The socket of `address` for `plugin`, bound now if nobody holds it yet."""
        with self.lock:
            names = declared(self.spec_dir).get(address, set())
            if plugin not in names:
                raise ProcessManagerError(f"plugin {plugin} has no daemon listening on {address}")
            if address in self.held:
                owner, sock = self.held[address]
                if owner != plugin:
                    raise ProcessManagerError(f"{address} is the socket of plugin {owner}")
                return sock
            family, host, port = parse(address)
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host, port))
                sock.listen(socket.SOMAXCONN)
            except OSError as exc:
                sock.close()
                who = f" by {holder(port)}" if exc.errno == 98 else ""  # EADDRINUSE
                raise ProcessManagerError(
                    f"cannot listen on {address}: {exc.strerror}{who}: stop it, or give "
                    "the daemon another listen address (plugins.reload applies it)"
                ) from None
            self.held[address] = (plugin, sock)
            return sock

    def prune(self) -> None:
        """Close the sockets that no program file names any more."""
        with self.lock:
            names = declared(self.spec_dir)
            for address, (plugin, sock) in list(self.held.items()):
                if plugin not in names.get(address, set()):
                    sock.close()
                    del self.held[address]

    def serve_one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1)  # a worker asks at once; a silent client holds nobody long
            try:
                ask = json.loads(conn.recv(_MAX_REQUEST))
                sock = self.get(str(ask["plugin"]), str(ask["address"]))
            except ProcessManagerError as exc:
                conn.sendall(json.dumps({"error": str(exc)}).encode())
                return
            except (OSError, ValueError, KeyError, TypeError) as exc:
                conn.sendall(json.dumps({"error": f"bad request: {exc}"}).encode())
                return
            fds = array.array("i", [sock.fileno()])
            conn.sendmsg([b'{"ok": true}'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])

    def run(self) -> None:
        while not self.closed.is_set():
            try:
                ready, _w, _x = select.select([self.server], [], [], 1.0)
                if ready:
                    conn, _addr = self.server.accept()
                    self.serve_one(conn)
                self.prune()
            except (OSError, ValueError):  # a worker gone, or the holder closed meanwhile
                continue

    def close(self) -> None:
        """Close every socket: supervisord is stopping (and closes its fds to reload)."""
        self.closed.set()
        with self.lock:
            for _plugin, sock in self.held.values():
                sock.close()
            self.held.clear()
            self.server.close()
        self.path.unlink(missing_ok=True)


_HOLDER: Holder | None = None


class Interface:
    """`plugin_sockets.*` over supervisord's XML-RPC: what the holder holds."""

    def held(self) -> list[dict[str, str]]:
        if _HOLDER is None:
            return []
        with _HOLDER.lock:
            return [{"address": a, "plugin": p} for a, (p, _s) in sorted(_HOLDER.held.items())]


def make_interface(supervisord: Any, path: str, specs: str) -> Interface:
    """supervisord's factory for `[rpcinterface:plugin_sockets]`: the holder starts once
    supervisord runs (after it daemonized) and closes its sockets when it stops; a reload
    (which stops every worker, then closes supervisord's fds) starts a new one."""
    from supervisor import events

    def start(_event: Any) -> None:
        global _HOLDER
        if _HOLDER is None:
            _HOLDER = Holder(Path(path), Path(specs))
            threading.Thread(target=_HOLDER.run, name="plugin_sockets", daemon=True).start()

    def stop(_event: Any) -> None:
        global _HOLDER
        if _HOLDER is not None:
            _HOLDER.close()
            _HOLDER = None

    events.subscribe(events.SupervisorRunningEvent, start)
    events.subscribe(events.SupervisorStoppingEvent, stop)
    return Interface()


def fetch(path: Path, plugin: str, address: str, wait: float = 10.0) -> int:
    """Ask the runtime's holder at `path` for `plugin`'s socket on `address`; its new fd."""
    import time

    deadline = time.monotonic() + wait
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(wait)
            conn.connect(str(path))
            conn.sendall(json.dumps({"plugin": plugin, "address": address}).encode())
            data, fds, _flags, _addr = socket.recv_fds(conn, _MAX_REQUEST, 1)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise ProcessManagerError(
                    f"no socket holder answers at {path}: the process manager predates "
                    "it; restart it (plugins.stop, then plugins.start)"
                ) from None
            time.sleep(0.1)
        except OSError as exc:
            raise ProcessManagerError(f"socket holder at {path}: {exc}") from None
        finally:
            conn.close()
    answer = json.loads(data or b"{}")
    if fds and answer.get("ok"):
        return fds[0]
    for fd in fds:
        os.close(fd)
    raise ProcessManagerError(str(answer.get("error") or f"{path}: no answer"))
