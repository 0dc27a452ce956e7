"""A target a release is built for, as `PYTHONTAG-PLATFORM` (`cp312-manylinux_2_17_x86_64`):
the Python and platform it installs on, the wheel tags that run there, the environment its
markers evaluate against. Linux targets only: manylinux, musllinux and `linux_ARCH`.
`build.cross` fills a release's wheelhouse for its targets; `artifact.targets` tells
whether one fits this host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_FORM = re.compile(r"(cp|pp)(3)(\d{1,2})-((?:manylinux|musllinux)_(\d+)_(\d+)_(\w+)|linux_(\w+))")
_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


@dataclass(frozen=True)
class Target:
    """One Python and platform a release can be installed on."""

    python: str  # cp312
    platform: str  # manylinux_2_17_x86_64

    def __str__(self) -> str:
        return f"{self.python}-{self.platform}"

    @property
    def version(self) -> tuple[int, int]:
        return int(self.python[2]), int(self.python[3:])

    @property
    def machine(self) -> str:
        match = _FORM.fullmatch(str(self))
        assert match is not None
        return match.group(7) or match.group(8)

    def platforms(self) -> list[str]:
        """The platform tags of wheels that run there, best first."""
        match = _FORM.fullmatch(str(self))
        assert match is not None
        family, major, minor = match.group(4).split("_")[0], match.group(5), match.group(6)
        arch = self.machine
        if family == "linux":
            return [self.platform]
        found = []
        for lower in range(int(minor), -1, -1):
            found.append(f"{family}_{major}_{lower}_{arch}")
            if family == "manylinux" and (int(major), lower) in _LEGACY:
                found.append(f"{_LEGACY[(int(major), lower)]}_{arch}")
        return found

    def tags(self) -> list[Any]:
        """The wheel tags installable there, best first (packaging's order)."""
        from packaging import tags

        abis = [f"{self.python}"] if self.python.startswith("cp") else []
        found = list(tags.cpython_tags(self.version, abis, self.platforms())) if abis else []
        interpreter = self.python
        return found + list(tags.compatible_tags(self.version, interpreter, self.platforms()))

    def accepts(self, wheel_name: str) -> bool:
        """Whether the wheel file `wheel_name` installs there."""
        from packaging.utils import parse_wheel_filename

        return bool(set(parse_wheel_filename(wheel_name)[3]) & set(self.tags()))

    def environment(self) -> dict[str, str]:
        """The environment markers evaluate against there."""
        version = ".".join(map(str, self.version))
        cpython = self.python.startswith("cp")
        return {
            "python_version": version,
            "python_full_version": f"{version}.0",
            "implementation_name": "cpython" if cpython else "pypy",
            "implementation_version": f"{version}.0",
            "platform_python_implementation": "CPython" if cpython else "PyPy",
            "platform_machine": self.machine,
            "platform_system": "Linux",
            "platform_release": "",
            "platform_version": "",
            "sys_platform": "linux",
            "os_name": "posix",
        }


def parse(text: str) -> list[Target]:
    """Targets from a space- or comma-separated list; ValueError naming a bad one."""
    found: list[Target] = []
    for word in text.replace(",", " ").split():
        if not _FORM.fullmatch(word):
            raise ValueError(
                f"{word!r} is not a target: write PYTHONTAG-PLATFORM, as "
                "cp312-manylinux_2_17_x86_64 or cp311-linux_aarch64 (Linux only)"
            )
        python, _sep, platform = word.partition("-")
        if Target(python, platform) not in found:
            found.append(Target(python, platform))
    return found
