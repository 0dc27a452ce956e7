"""The runtime's socket holder: one listening socket per address, one plugin per port.

In-process, with real sockets: the holder serves its unix socket from a thread, as it does
inside supervisord, and `fetch` (what `daemon_exec` calls) receives a working duplicate.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path

import pytest

from toolchain.core import listen
from toolchain.core.errors import ProcessManagerError
from toolchain.running import sockets


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spec(spec_dir: Path, plugin: str, address: str) -> None:
    daemon = {"program": f"{plugin}.web", "exec": ["true"], "listen": address}
    doc = {"plugin": plugin, "daemons": {"web": daemon}}
    (spec_dir / f"{plugin}.json").write_text(json.dumps(doc))


def test_a_port_is_bound_once_shared_by_its_plugin_and_refused_to_others(tmp_path: Path) -> None:
    specs = tmp_path / "supervisor.d"
    specs.mkdir()
    address = f"127.0.0.1:{_free_port()}"
    _spec(specs, "web", address)
    _spec(specs, "intruder", address)  # another plugin naming the same port
    holder = sockets.Holder(tmp_path / "sockets.sock", specs)
    threading.Thread(target=holder.run, daemon=True).start()
    try:
        first = sockets.fetch(holder.path, "web", address)
        second = sockets.fetch(holder.path, "web", address)
        with socket.socket(fileno=first) as a, socket.socket(fileno=second) as b:
            assert a.getsockname() == b.getsockname() == listen.parse(address)[1:]
            with socket.create_connection(a.getsockname()):  # one queue: either accepts it
                conn, _peer = b.accept()
                conn.close()
        with pytest.raises(
            ProcessManagerError, match=re.escape(f"{address} is the socket of plugin web")
        ):
            sockets.fetch(holder.path, "intruder", address)
        with pytest.raises(ProcessManagerError, match="plugin web has no daemon listening"):
            sockets.fetch(holder.path, "web", "127.0.0.1:9")
        # Nobody names it any more: closed, the port free again.
        for spec in specs.iterdir():
            spec.unlink()
        holder.prune()
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # our TIME_WAIT
            again.bind(listen.parse(address)[1:])
    finally:
        holder.close()
    assert not holder.path.exists()


def test_a_port_held_elsewhere_and_a_missing_holder_are_one_line(tmp_path: Path) -> None:
    specs = tmp_path / "supervisor.d"
    specs.mkdir()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        address = f"127.0.0.1:{squatter.getsockname()[1]}"
        _spec(specs, "web", address)
        holder = sockets.Holder(tmp_path / "sockets.sock", specs)
        try:
            with pytest.raises(ProcessManagerError) as held:
                holder.get("web", address)
        finally:
            holder.close()
    assert f"cannot listen on {address}: Address already in use by pid {os.getpid()}" in str(
        held.value
    )
    with pytest.raises(ProcessManagerError, match=r"no socket holder answers at .*plugins\.stop"):
        sockets.fetch(tmp_path / "nosuch.sock", "web", address, wait=0.3)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("8080", "use HOST:PORT"), ("example.org:80", "must be an IP address"),
     ("127.0.0.1:0", "from 1 to 65535"), ("[::1]:x", "from 1 to 65535")],
)  # fmt: skip
def test_a_listen_address_that_is_no_ip_and_port_says_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        listen.parse(text)
    assert listen.loopback_of("0.0.0.0:8080") == "127.0.0.1:8080"
    assert listen.health_url("/health", "[::]:81") == "http://[::1]:81/health"
