"""Listening addresses of daemons (`listen = HOST:PORT`) and the URLs that reach them."""

from __future__ import annotations

import ipaddress
import socket


def parse(text: str) -> tuple[socket.AddressFamily, str, int]:
    """(family, host, port) of `HOST:PORT` or `[IPV6]:PORT`; ValueError saying why not."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: use HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: the host must be an IP address, e.g. 127.0.0.1") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return family, str(address), int(port)


def loopback_of(text: str) -> str:
    """`host:port` that reaches a listening address from this host (the wildcard: loopback)."""
    family, host, port = parse(text)
    if ipaddress.ip_address(host).is_unspecified:
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"


def health_url(url: str, listen: str) -> str:
    """A daemon's `healthcheck_url`; a bare path (`/health`) is on its `listen` address."""
    if not url.startswith("/"):
        return url
    if not listen:
        raise ValueError(f"healthcheck_url {url!r} is a path: it needs a listen address")
    return f"http://{loopback_of(listen)}{url}"
