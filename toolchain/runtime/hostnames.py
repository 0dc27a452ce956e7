"""`*_hostname` and `*_hostnames` keys: their addresses, exported beside them (MetWork's way).

A key `db_hostname = db.example.com` exports `..._DB_HOSTNAME` as any key does, and
`..._DB_HOSTNAME_IP` with its address; `peers_hostnames = a, b` exports
`..._PEERS_HOSTNAMES_IPS`, one address per name, comma-separated. Names are resolved when
the plugin env is computed; a cached env holding addresses is computed again after
`TTL` seconds, so that a changed DNS entry reaches the next command.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping

from toolchain.config.layers import env_var_name
from toolchain.core.errors import ConfigError

TTL = 60.0
_SUFFIXES = {"hostname": "_IP", "hostnames": "_IPS"}


def _suffix(key: str) -> str | None:
    """`_IP` or `_IPS` for a key naming host names, else None."""
    last = key.lower().replace("-", "_").rsplit("_", 1)[-1]
    return _SUFFIXES.get(last)


def is_address(variable: str) -> bool:
    """Whether `variable` is one this module adds (`..._HOSTNAME_IP`, `..._HOSTNAMES_IPS`)."""
    return variable.endswith(("_HOSTNAME_IP", "_HOSTNAMES_IPS"))


def resolve(host: str) -> str:
    """The address of `host`: its first IPv4 address when it has one, else the first."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except UnicodeError:
        raise ValueError("not a valid host name") from None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    addresses = [str(info[4][0]) for info in found]
    v4 = [a for a in addresses if ":" not in a]
    return (v4 or addresses)[0]


def addresses(
    plugin: str,
    merged: Mapping[str, Mapping[str, str]],
    module: str,
    resolver: Callable[[str], str] | None = None,
    previous: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`{VAR_IP(S): address(es)}` for every non-private `*_hostname(s)` key of `merged`;
    `resolver` (default `resolve`) turns a name into its address. A name that does not
    resolve is an error, unless `previous` (the variables of the last computation, with
    the same configuration) has its variable: a DNS server that does not answer for a
    while then keeps the plugin running on the last addresses, with a warning."""
    resolver = resolver or resolve
    out: dict[str, str] = {}
    for section, keys in merged.items():
        for key, value in keys.items():
            suffix = _suffix(key)
            if key.startswith("_") or suffix is None:
                continue
            names = [n.strip() for n in value.split(",")] if suffix == "_IPS" else [value.strip()]
            variable = env_var_name(module, section, key) + suffix
            resolved = []
            for name in filter(None, names):
                try:
                    resolved.append(resolver(name))
                except ValueError as exc:
                    said = f"plugin {plugin}: [{section}] {key}: {name!r} does not resolve ({exc})"
                    if previous and previous.get(variable):
                        logging.getLogger(__name__).warning(
                            "%s; keeping the last address(es), %s", said, previous[variable]
                        )
                        resolved = [previous[variable]]
                        break
                    raise ConfigError(
                        f"{said}; fix the name in its configuration or in DNS (/etc/hosts)"
                    ) from None
            out[variable] = ",".join(resolved)
    return out
