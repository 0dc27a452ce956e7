"""The toolchain's exceptions: one base class, one subclass per kind of failure."""

from __future__ import annotations


class ToolchainError(Exception):
    """Base of every error the toolchain explains to its user in one line."""


class UsageError(ToolchainError):
    """Raised when a command is called with arguments it cannot accept (exit code 2)."""


class InvalidName(ToolchainError):
    """Raised when a plugin name breaks the naming rules."""


class ConfigError(ToolchainError):
    """Raised when a `config.ini` or an override file is invalid; names file, section, key."""


class TemplateError(ToolchainError):
    """Raised when a template is unknown or cannot be rendered."""


class CommandError(ToolchainError):
    """Raised when a subprocess fails; carries the command and the tail of its output."""

    def __init__(self, cmd: list[str], returncode: int, output: str, what: str = "") -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.output = output
        tail = " | ".join(line.strip() for line in output.strip().splitlines()[-3:] if line.strip())
        head = what or " ".join(cmd[:4])
        super().__init__(f"{head} failed (exit {returncode}): {tail or 'no output'}")


class FreezeError(ToolchainError):
    """Raised when the requirements cannot be frozen."""


class VenvError(ToolchainError):
    """Raised when a plugin's virtualenv cannot be built."""


class ReleaseError(ToolchainError):
    """Raised when a `.plugin` file cannot be built."""


class NodeError(ToolchainError):
    """Raised when npm is missing or fails for a plugin with Node.js dependencies."""


class ArtifactError(ToolchainError):
    """Raised when a `.plugin` file is unreadable, corrupt, unsafe or inconsistent."""


class InstallError(ToolchainError):
    """Raised when a plugin cannot be installed, uninstalled or changed."""


class LockTimeout(ToolchainError):
    """Raised when the runtime lock is not obtained in time."""


class NotInstalled(ToolchainError):
    """Raised when a command names a plugin that is not installed."""


class CronError(ToolchainError):
    """Raised when a plugin's `crontab` cannot be rendered or the user's crontab updated."""


class ProcessManagerError(ToolchainError):
    """Raised when the runtime's process manager (supervisord) cannot be run or reached."""


class ResolutionError(InstallError):
    """Raised when plugin dependencies cannot be resolved; lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        super().__init__(f"nothing installed: {count} with plugin dependencies: {listed}")


class UnhealthyError(InstallError):
    """Raised when a new version failed its health checks and the previous one is back;
    `details` holds the failing check's output, printed before the one-line error."""

    def __init__(self, message: str, details: list[str]) -> None:
        self.details = list(details)
        super().__init__(message)
