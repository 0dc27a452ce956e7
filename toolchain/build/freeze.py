"""Freezing: `requirements-to-freeze.txt` -> `requirements3.txt` (pins with hashes).

pip-tools resolves, run as a subprocess. The input's sha256 is written into the output's
header, so a committed `requirements3.txt` stays frozen on a fresh clone (mtimes lie) and
is re-resolved only when the input's content changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from toolchain.core import pins
from toolchain.core.errors import CommandError, FreezeError
from toolchain.core.layout import REQ_OUT, PluginDir
from toolchain.core.pins import Pin
from toolchain.localenv import backend

_STAMP = re.compile(r"^# input-sha256: ([0-9a-f]{64})$", re.MULTILINE)
HEADER = (
    "# Frozen from requirements-to-freeze.txt by `make` (plugin-build freeze); do not edit.\n"
    "# input-sha256: {digest}\n"
)


def input_digest(plugin: PluginDir, constraints: Sequence[Path] = ()) -> str:
    """sha256 of what the frozen file depends on: the input and any constraint files."""
    digest = hashlib.sha256(plugin.req_in.read_bytes())
    for path in constraints:
        digest.update(b"\0" + path.read_bytes())
    return digest.hexdigest()


def is_fresh(plugin: PluginDir, constraints: Sequence[Path] = ()) -> bool:
    """Whether `requirements3.txt` was frozen from the current input."""
    if not plugin.req_out.is_file():
        return False
    match = _STAMP.search(plugin.req_out.read_text(encoding="utf-8"))
    return match is not None and match.group(1) == input_digest(plugin, constraints)


_CARRIED = (
    "--index-url",
    "-i",
    "--extra-index-url",
    "--find-links",
    "-f",
    "--no-index",
    "--trusted-host",
)


def index_options(text: str) -> list[str]:
    """The input's own index options, carried verbatim into the output (not pip's config)."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line.split("=", 1)[0].split(" ", 1)[0] in _CARRIED]


def _compile(source: Path, output: Path, constraints: Sequence[Path]) -> None:
    """Resolve `source` into `output` (in the same directory) with hashes."""
    backend.current().compile(source, output, constraints)


_NOT_FOUND = re.compile(r"No matching distribution found for (?P<req>\S+)")  # pip
_VERSIONS = re.compile(r"satisfies the requirement (?P<req>\S+) \(from versions: (?P<v>[^)]*)\)")
_NETWORK = (
    "Failed to establish a new connection",
    "Max retries exceeded",
    "Network is unreachable",
)
_NOISE = re.compile(r"^(Traceback|File \"|raise |\^|During handling|The above exception|\s*$)")
_DECORATION = " \u00d7\u2570\u2500\u25b6\u2502"  # the box drawing of uv's reports


def _line_of(plugin: PluginDir, requirement: str) -> str:
    """` (line N)` where `requirement`'s project is named in the input, else nothing."""
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
    lines = plugin.req_in.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if line.strip().lower().replace("_", "-").startswith(name):
            return f" (line {number})"
    return ""


def explain(plugin: PluginDir, exc: CommandError) -> str:
    """What went wrong, in words, from the resolver's output: no traceback fragments."""
    out = exc.output
    found = _VERSIONS.search(out)
    if found:
        versions = found["v"].strip() or "none"
        if len(versions) > 80:
            versions = "..., " + versions[-70:].split(", ", 1)[-1]
        req = found["req"]
        return (
            f"no release of {req} matches{_line_of(plugin, req)}; the index has {versions}: "
            "fix the requirement"
        )
    found = _NOT_FOUND.search(out)
    if found:
        req = found["req"]
        return f"no release of {req} on the package index{_line_of(plugin, req)}: fix the name"
    if any(marker in out for marker in _NETWORK):
        return "cannot reach the package index; check the network or the index settings of pip"
    said = [x.strip(_DECORATION) for x in out.splitlines()]
    said = [x.removeprefix("cause: ").removeprefix("error: ") for x in said if not _NOISE.match(x)]
    reason = next((x for x in said if x.startswith("Because") or "incompatible" in x), "")
    if reason:  # uv explains a failed resolution in one sentence
        names = re.findall(r"(?:version of|require) ([A-Za-z0-9._-]+)", reason)
        where = _line_of(plugin, names[0]) if names else ""
        return f"{reason.rstrip('.')}{where}: fix the requirement"
    cannot = next((x for x in said if x.startswith("ERROR: Cannot install")), "")
    if cannot:  # pip: which requirements conflict, and on what
        wanted = dict.fromkeys(re.findall(r"SpecifierRequirement\('([^']+)'\)", out))
        detail = f" ({'; '.join(wanted)})" if wanted else ""
        return f"{cannot.removeprefix('ERROR: ').rstrip('.')}{detail}: loosen one of them"
    tail = " | ".join(said[-2:]) or "no output"
    return f"the resolver failed (exit {exc.returncode}): {tail}"


def freeze(plugin: PluginDir, *, force: bool = False, constraints: Sequence[Path] = ()) -> bool:
    """Freeze the plugin's requirements if the input changed; return whether it resolved."""
    if not plugin.req_in.is_file():
        raise FreezeError(f"{plugin.req_in}: missing; create it (it may be empty)")
    if not force and is_fresh(plugin, constraints):
        os.utime(plugin.req_out)  # tell make the output is up to date
        return False
    sources = plugin.req_in.parent
    tmp = sources / f".{plugin.req_out.name}.tmp"
    # Start from the current pins so that pip-tools keeps them where it can.
    if plugin.req_out.is_file() and not force:
        shutil.copyfile(plugin.req_out, tmp)
    else:
        tmp.unlink(missing_ok=True)
    try:
        _compile(plugin.req_in, tmp, constraints)
        body = tmp.read_text(encoding="utf-8")
        for path in constraints:  # `# via -c FILE` names the file, not where it was made
            body = body.replace(str(path.absolute()), path.name)
        extra = "".join(f"{opt}\n" for opt in index_options(plugin.req_in.read_text("utf-8")))
        digest = input_digest(plugin, constraints)
        tmp.write_text(HEADER.format(digest=digest) + extra + body, encoding="utf-8")
        os.replace(tmp, plugin.req_out)
    except CommandError as exc:
        raise FreezeError(f"{plugin.req_in}: cannot freeze: {explain(plugin, exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return True


def compile_pins(plugin: PluginDir, constraints: Sequence[Path] = ()) -> list[Pin]:
    """Resolve the input afresh, without writing `requirements3.txt`; return the pins."""
    tmp = plugin.req_in.parent / f".{plugin.req_out.name}.probe"
    tmp.unlink(missing_ok=True)
    try:
        _compile(plugin.req_in, tmp, constraints)
        return read_pins(tmp)
    except CommandError as exc:
        raise FreezeError(f"{plugin.req_in}: cannot freeze: {explain(plugin, exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def read_pins(path: Path) -> list[Pin]:
    """Parse the pins of a frozen requirements file (`REQ_OUT`)."""
    return parse_pins(path.read_text(encoding="utf-8"), path)


def parse_pins(text: str, path: Path | str = REQ_OUT) -> list[Pin]:
    """Parse the pins of the text of a frozen requirements file; `path` names it in errors."""
    try:
        return pins.parse(text)
    except pins.PinError as exc:
        hint = "" if str(exc).startswith("line ") else "; run `make superclean all`"
        raise FreezeError(f"{path}: {exc}{hint}") from None
