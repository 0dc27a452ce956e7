"""The pins of a frozen requirements file (`requirements3.txt`): `name==version` lines with
their `--hash=` options, continuation lines joined. One parser for every side: the freeze
that writes them, the wheelhouse and the installer that read them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    """One `name==version` line of a frozen requirements file with its hashes
    (`sha256:HEX` strings); the name is canonical."""

    name: str
    version: str
    hashes: frozenset[str]
    marker: str | None = None  # an environment marker, where the pin holds only there

    def holds(self, environment: dict[str, str] | None = None) -> bool:
        """Whether the pin applies in `environment` (this interpreter's when None)."""
        if self.marker is None:
            return True
        from packaging.markers import Marker

        return Marker(self.marker).evaluate(environment)


class PinError(ValueError):
    """A line that is not an exact, hashed pin; the message says which and why."""


def parse(text: str, *, strict: bool = True) -> list[Pin]:
    """The pins of `text`. Strict: any line that is not a requirement pinned with `==` and
    a `--hash` is a PinError; otherwise such lines are skipped."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins = []
    for lineno, line in enumerate(text.replace("\\\n", " ").splitlines(), 1):
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        spec, *rest = line.split("--hash=")
        try:
            req = Requirement(spec.strip())
        except InvalidRequirement:
            if strict:
                raise PinError(f"line {lineno}: not a requirement: {spec.strip()!r}") from None
            continue
        versions = [s.version for s in req.specifier if s.operator in ("==", "===")]
        hashes = frozenset(h.strip() for h in rest if h.strip())
        if strict and len(versions) != 1:
            raise PinError(f"{req.name} is not pinned with ==")
        if strict and not hashes:
            raise PinError(f"{req.name} has no --hash")
        if len(versions) == 1:
            marker = str(req.marker) if req.marker else None
            pins.append(Pin(canonicalize_name(req.name), versions[0], hashes, marker))
    return pins
