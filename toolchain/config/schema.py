"""The schema of `config.ini`: its sections and keys, the check of each value, and
`_requires` (other plugins, PEP 508-like).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolchain.core.errors import ConfigError, InvalidName
from toolchain.core.names import check_name

Raw = dict[str, dict[str, str]]


_VARIANT = re.compile(r"^(?P<key>[^\[\]]+)\[(?P<variant>[A-Za-z0-9_]+)\]$")


def shorten(text: str, width: int = 60) -> str:
    """`text`, cut to `width` characters for an error message."""
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


def _nonempty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _version(value: str) -> str | None:
    from packaging.version import InvalidVersion, Version

    if len(value) > 128:
        return f"{shorten(value)!r} is too long for a version (128 characters at most)"
    try:
        Version(value)
    except (InvalidVersion, ValueError):  # ValueError: a number Python will not convert
        return f"{shorten(value)!r} is not a valid PEP 440 version (e.g. 1.0.2)"
    return None


def _int(minimum: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        try:
            number = int(value) if len(value) <= 30 else None
        except ValueError:
            number = None
        if number is None:
            return f"{shorten(value)!r} is not an integer"
        if number < minimum:
            return f"{number} is below the minimum {minimum}"
        return None

    return check


_BOOLS = {"1", "0", "true", "false", "yes", "no", "on", "off"}


def _bool(value: str) -> str | None:
    return None if value.strip().lower() in _BOOLS else f"{value!r} is not a boolean (1/0)"


def _requires(value: str) -> str | None:
    try:
        parse_requires(value)
    except ConfigError as exc:
        return str(exc)
    return None


def _any(value: str) -> str | None:
    return None


def _loopback_url(value: str) -> str | None:
    """An http URL on this machine's loopback (what a health check may call), or empty."""
    from urllib.parse import urlsplit

    if not value.strip() or value.strip().startswith("/"):
        return None  # a path: on the daemon's own `listen` address
    try:
        url = urlsplit(value.strip())
        ok = url.scheme in ("http", "https") and url.hostname in ("127.0.0.1", "localhost", "::1")
        ok = ok and (url.port or 0) >= 0  # a port that is no number raises
    except ValueError:
        ok = False
    if not ok:
        return (
            f"{shorten(value)!r} is not an http URL on the loopback (127.0.0.1, localhost, [::1]) "
            "nor a path on the daemon's listen address (/health)"
        )
    return None


def _listen(value: str) -> str | None:
    from toolchain.core import listen

    if not value.strip():
        return None
    try:
        listen.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _targets(value: str) -> str | None:
    from toolchain.core import targets

    try:
        targets.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Key:
    """One key of the schema: its check, whether it is required, its default."""

    check: Callable[[str], str | None] = _any
    required: bool = False
    default: str | None = None


GENERAL: dict[str, Key] = {
    "name": Key(_nonempty, required=True),
    "_version": Key(_version, required=True),
    "_release": Key(_int(1), default="1"),
    "_summary": Key(),
    "_license": Key(),
    "_url": Key(),
    "_maintainer": Key(),
    "_vendor": Key(),
    "_requires": Key(_requires, default=""),
    "_targets": Key(_targets, default=""),  # what `make release` builds for (artifact.targets)
    "_add_plugin_dir_to_python_path": Key(_bool, default="0"),
}


DAEMON: dict[str, Key] = {
    "_cmd_and_args": Key(_nonempty, required=True),
    "numprocesses": Key(_int(1), default="1"),
    "graceful_timeout": Key(_int(0), default="10"),
    "max_age": Key(_int(0), default="0"),
    # Each worker's max_age gets a random 0 to max_age_variance seconds more (circus's).
    "max_age_variance": Key(_int(0), default="0"),
    # One worker, no max_age, {MODULE}_CURRENT_DAEMON_DEBUG=1 in its environment.
    "debug": Key(_bool, default="0"),
    "rlimit_as": Key(_int(0), default="0"),
    "rlimit_nofile": Key(_int(0), default="0"),
    "rlimit_stack": Key(_int(0), default="0"),
    "rlimit_fsize": Key(_int(0), default="0"),
    "log_split_stdout_stderr": Key(_bool, default="0"),
    "log_split_multiple_workers": Key(_bool, default="0"),
    # HOST:PORT the runtime listens on and hands to every worker as fd 3 (running.sockets).
    "listen": Key(_listen, default=""),
    # GET it on the loopback (or a path on `listen`): a 2xx within the timeout is healthy.
    "healthcheck_url": Key(_loopback_url, default=""),
    "healthcheck_timeout": Key(_int(1), default="10"),
}


DAEMON_PREFIX = "extra_daemon_"


def schema_for(section: str) -> dict[str, Key] | None:
    """Keys allowed in `section`; None means free keys (`[custom]`); KeyError if unknown."""
    if section == "general":
        return GENERAL
    if section == "custom":
        return None
    if section.startswith(DAEMON_PREFIX) and len(section) > len(DAEMON_PREFIX):
        return DAEMON
    raise KeyError(section)


_DAEMON_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Linux refuses to exec with an environment string over 128 KiB (MAX_ARG_STRLEN), name
# included: every command of the plugin would fail.
MAX_VALUE = 128 * 1024 - 256


def split_variant(key: str) -> tuple[str, str | None]:
    """`key[VARIANT]` -> (key, VARIANT); a plain key -> (key, None)."""
    match = _VARIANT.match(key)
    if match:
        return match["key"], match["variant"]
    return key, None


def validate(raw: Raw, path: Path | str, *, override: bool = False) -> None:
    """Check `raw` against the schema; raise ConfigError naming file, section and key.

    An override file (`override=True`) may not set private keys nor require keys.
    """
    if not override and "general" not in raw:
        found = [s for s in raw if s.lower() == "general"]
        hint = f" (there is [{found[0]}]: section names are lower case)" if found else ""
        raise ConfigError(f"{path}: missing section [general]{hint}: add it with name and _version")
    for section, keys in raw.items():
        try:
            schema = schema_for(section)
        except KeyError:
            raise ConfigError(
                f"{path}: unknown section [{shorten(section)}]: use [general], [custom] "
                f"or [{DAEMON_PREFIX}NAME]"
            ) from None
        daemon = section[len(DAEMON_PREFIX) :] if schema is DAEMON else None
        if daemon is not None and not _DAEMON_NAME.match(daemon):
            raise ConfigError(
                f"{path}: [{shorten(section)}]: a daemon name is 1 to 64 letters, digits, '_' "
                "or '-' (the process manager takes no other); rename the section"
            )
        for written, value in keys.items():
            key, _variant = split_variant(written)
            if len(value) > MAX_VALUE and section != "general":  # metadata: checked below
                raise ConfigError(
                    f"{path}: [{section}] {written}: {len(value)} characters, more than an "
                    f"environment variable may hold ({MAX_VALUE}); shorten it"
                )
            if override and key.startswith("_"):
                raise ConfigError(
                    f"{path}: [{section}] {written}: private keys (starting with '_') "
                    "cannot be overridden; remove it"
                )
            if schema is None:
                continue
            spec = schema.get(key)
            if spec is None:
                raise ConfigError(
                    f"{path}: [{section}] unknown key {shorten(written)!r}: remove it"
                )
            if "{{" in value or "{%" in value:
                if section == "general":
                    raise ConfigError(
                        f"{path}: [general] {written}: the plugin's metadata cannot be a Jinja2 "
                        "template; write the value itself"
                    )
                continue  # a template: checked once rendered
            problem = (
                spec.check(value)
                if "\n" not in value or section != "general"
                else ("must fit on one line")
            )
            if problem:
                raise ConfigError(f"{path}: [{section}] {written}: {problem}")
        if schema is not None and not override:
            present = {split_variant(k)[0] for k in keys}
            for key, spec in schema.items():
                if spec.required and key not in present:
                    raise ConfigError(f"{path}: [{section}] missing required key {key!r}")
    if not override:
        name = raw["general"].get("name", "")
        try:
            check_name(name)
        except InvalidName as exc:
            raise ConfigError(f"{path}: [general] name: {exc}") from None


def parse_requires(value: str) -> list[tuple[str, str]]:
    """`other>=1.2, third` -> [('other', '>=1.2'), ('third', '')]."""
    from packaging.requirements import InvalidRequirement, Requirement

    items: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        # A comma also separates specifiers (`a>=1,<2`): glue such parts to the previous one.
        if items and part[:1] in ("<", ">", "=", "!", "~"):
            items[-1] += "," + part
        elif part:
            items.append(part)
    result = []
    for item in items:
        try:
            req = Requirement(item)
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            raise ConfigError(f"invalid plugin requirement {item!r}: {reason}") from None
        result.append((req.name, str(req.specifier)))
    return result
