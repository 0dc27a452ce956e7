"""Reading `config.ini` and its override layers, merging them (variants included), rendering
Jinja2 values and exporting the non-private keys as environment variables.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.config.schema import Raw, schema_for, shorten, split_variant, validate
from toolchain.core.errors import ConfigError


def _syntax(path: Path, exc: configparser.Error) -> ConfigError:
    """One line for a configparser error: the file, the line, what is wrong, what to do."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        if exc.line.lstrip().startswith("["):
            return ConfigError(
                f"{path}: line {exc.lineno}: {shorten(exc.line.strip())!r} is not a [section] "
                "header; close it with ]"
            )
        return ConfigError(
            f"{path}: line {exc.lineno}: {shorten(exc.line.strip())!r} stands before any "
            "[section]; start the file with [general]"
        )
    if isinstance(exc, configparser.DuplicateSectionError):
        return ConfigError(f"{path}: line {exc.lineno}: section [{exc.section}] appears twice")
    if isinstance(exc, configparser.DuplicateOptionError):
        return ConfigError(
            f"{path}: line {exc.lineno}: [{exc.section}] {exc.option} is set twice; keep one"
        )
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        lineno, line = exc.errors[0]
        return ConfigError(  # configparser gives the line as its repr
            f"{path}: line {lineno}: {shorten(line)} is neither a [section] nor a "
            "`key = value` line; fix or remove it"
        )
    return ConfigError(f"{path}: not a valid ini file: {str(exc).splitlines()[0]}")


def read_raw(path: Path) -> Raw:
    """Read an ini file into {section: {key: value}}, keys as written, no interpolation."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(
            f"{path}: line 1: starts with a UTF-8 byte order mark; save it as UTF-8 without one"
        )
    if b"\0" in data:
        lineno = data[: data.index(b"\0")].count(b"\n") + 1
        raise ConfigError(f"{path}: line {lineno}: holds a NUL byte; is it a text file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {lineno}: not UTF-8 text; save it as UTF-8") from None
    parser = configparser.ConfigParser(interpolation=None, strict=True, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise _syntax(path, exc) from None
    return {s: dict(parser.items(s)) for s in parser.sections()}


def variant_chain(config_name: str) -> list[str]:
    """`DEV_JOHN` -> ['DEV_JOHN', 'DEV']: the variants to try, most specific first."""
    parts = [p for p in config_name.split("_") if p]
    return ["_".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _select(keys: Mapping[str, str], chain: list[str]) -> dict[str, str]:
    """Pick, per key, the value of the most specific matching variant of one layer."""
    chosen: dict[str, tuple[int, str]] = {}
    rank = {variant: i for i, variant in enumerate(chain)}
    plain = len(chain)
    for written, value in keys.items():
        key, variant = split_variant(written)
        if variant is None:
            score = plain
        elif variant in rank:
            score = rank[variant]
        else:
            continue
        if key not in chosen or score < chosen[key][0]:
            chosen[key] = (score, value)
    return {k: v for k, (_s, v) in chosen.items()}


def merge(layers: Iterable[Raw], config_name: str = "") -> Raw:
    """Merge layers (later wins per key) after choosing each layer's variants."""
    chain = variant_chain(config_name)
    merged: Raw = {}
    for raw in layers:
        for section, keys in raw.items():
            merged.setdefault(section, {}).update(_select(keys, chain))
    for section, keys in merged.items():
        schema = schema_for(section)
        if schema:
            for key, spec in schema.items():
                if spec.default is not None:
                    keys.setdefault(key, spec.default)
    return merged


def template_environment() -> Any:
    """The Jinja2 environment every configuration value and crontab line is rendered in.

    Sandboxed: a value comes from a plugin or an override file and is rendered by the
    operator's commands, so attributes such as `__globals__` are refused, nothing is
    mutable, and no global (`lipsum`, `range`, ...) is offered: only the variables given.
    """
    import jinja2  # only when a value is a template: keeps start-up fast
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.globals.clear()
    return env


def render(merged: Raw, context: Mapping[str, str], path: Path | str = "config") -> Raw:
    """Render Jinja2 values against `context` (the environment); check rendered types."""
    out: Raw = {}
    env = None
    for section, keys in merged.items():
        schema = schema_for(section)
        out[section] = {}
        for key, value in keys.items():
            if "{{" in value or "{%" in value:
                if env is None:
                    env = template_environment()
                try:
                    value = env.from_string(value).render(dict(context))
                except Exception as exc:  # jinja2 raises many kinds; all mean the same here
                    raise ConfigError(f"{path}: [{section}] {key}: cannot render: {exc}") from None
                spec = schema.get(key) if schema else None
                problem = spec.check(value) if spec else None
                if problem:
                    raise ConfigError(f"{path}: [{section}] {key}: {problem}")
            out[section][key] = value
    return out


@dataclass
class PluginConfig:
    """The metadata of a plugin read from its `config.ini`."""

    path: Path
    raw: Raw
    general: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.general["name"]

    @property
    def version(self) -> str:
        return self.general["_version"]

    @property
    def release(self) -> str:
        return self.general["_release"]


def load(path: Path) -> PluginConfig:
    """Read and validate a plugin's `config.ini`."""
    raw = read_raw(path)
    validate(raw, path)
    general = merge([{"general": raw["general"]}])["general"]
    return PluginConfig(path=path, raw=raw, general=general)


def env_var_name(module: str, section: str, key: str) -> str:
    """`{MODULE}_CURRENT_PLUGIN_{SECTION}_{KEY}`, upper case, '-' as '_'."""
    return f"{module}_CURRENT_PLUGIN_{section}_{key}".upper().replace("-", "_")


def exported(merged: Raw, module: str) -> dict[str, str]:
    """Every non-private key as its environment variable."""
    out = {}
    for section, keys in merged.items():
        for key, value in keys.items():
            if not key.startswith("_"):
                out[env_var_name(module, section, key)] = value
    return out
