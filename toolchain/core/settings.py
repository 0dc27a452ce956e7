"""Every `PLUGIN_*` setting, read here and nowhere else.

Each reader looks at the environment when called (tests and the process manager change
it), returns plain strings or numbers, and raises `ToolchainError` naming the variable
for a value it cannot take. Only `os` and the toolchain's errors are imported:
`plugin_wrapper`'s fast path, which cron starts often, reads its settings here too.
"""

from __future__ import annotations

import os

from toolchain.core.errors import ToolchainError

RUNTIME_HOME = "PLUGIN_RUNTIME_HOME"
MODULE = "PLUGIN_MODULE"
CONFIG_NAME = "PLUGIN_CONFIG_NAME"
PROVISIONING_DIR = "PLUGIN_PROVISIONING_DIR"
BACKEND = "PLUGIN_BACKEND"
LOCK_TIMEOUT = "PLUGIN_LOCK_TIMEOUT"
CRON_TIMEOUT = "PLUGIN_CRON_TIMEOUT"
ARCHIVE_KEEP = "PLUGIN_ARCHIVE_KEEP"
INSTALL_CRONTAB = "PLUGIN_INSTALL_CRONTAB"
FAILPOINT = "PLUGIN_FAILPOINT"
REPOSITORY = "PLUGIN_REPOSITORY"
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
# Set by bootstrap_plugin.py for the template hooks: where to write the answers refused.
TEMPLATE_PROBLEMS = "PLUGIN_TEMPLATE_PROBLEMS"
MAX_UNPACKED_MB = "PLUGIN_MAX_UNPACKED_MB"
MAX_RATIO = "PLUGIN_MAX_COMPRESSION_RATIO"
SIGNING_KEY = "PLUGIN_SIGNING_KEY"
TARGETS = "PLUGIN_TARGETS"
HEALTHCHECK_TIMEOUT = "PLUGIN_HEALTHCHECK_TIMEOUT"
SIGNATURE_POLICY = "PLUGIN_SIGNATURE_POLICY"

# What the runtime's process manager hands on to the programs it starts.
PASSED_TO_DAEMONS = (RUNTIME_HOME, MODULE, CONFIG_NAME, PROVISIONING_DIR)
BACKENDS = ("pip", "uv")
SIGNATURE_POLICIES = ("require", "warn", "off")
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_CRON_TIMEOUT = 3600
DEFAULT_HEALTHCHECK_TIMEOUT = 30.0
DEFAULT_ARCHIVE_KEEP = 2
# What a real plugin never meets: numpy and pandas unpack 29 MB into 142 MB (ratio 5).
DEFAULT_MAX_UNPACKED_MB = 8192
DEFAULT_MAX_RATIO = 100
_YES = ("1", "true", "yes")


def runtime_home() -> str:
    """The runtime tree: `$PLUGIN_RUNTIME_HOME`, else `plugin-runtime` in the user's data dir.

    Absolute, like `Path.absolute()`: no `..` resolved, "." parts and repeated slashes dropped.
    """
    env = os.environ.get(RUNTIME_HOME)
    if env:
        path = os.path.expanduser(env)
        if not os.path.isabs(path):
            path = os.path.join(os.getcwd(), path)
        return "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(xdg, "plugin-runtime")


def repository() -> str | None:
    """`$PLUGIN_REPOSITORY`: a directory of `.plugin` files where a freeze finds the pins of
    required plugins that are not in the runtime; None when unset or empty."""
    return os.environ.get(REPOSITORY) or None


def module_name() -> str:
    """The module name prefixing exported variables (`$PLUGIN_MODULE`, default plugins)."""
    return os.environ.get(MODULE) or "plugins"


def config_name() -> str:
    """The configuration name that picks variants (`$PLUGIN_CONFIG_NAME`)."""
    return os.environ.get(CONFIG_NAME, "")


def provisioning_dir() -> str | None:
    """The read-only provisioning override directory (`$PLUGIN_PROVISIONING_DIR`), if set."""
    return os.environ.get(PROVISIONING_DIR) or None


def signing_key() -> str | None:
    """`$PLUGIN_SIGNING_KEY`: the OpenSSH key `make release` signs with (a private key file,
    or a public key whose private half is in ssh-agent); None when unset or empty."""
    return os.environ.get(SIGNING_KEY) or None


def targets() -> str | None:
    """`$PLUGIN_TARGETS`: what `make release` builds for (`cp312-manylinux_2_17_x86_64 ...`);
    None when unset or empty (the config's `_targets`, else this host)."""
    return os.environ.get(TARGETS, "").strip() or None


def signature_policy(default: str) -> str:
    """`$PLUGIN_SIGNATURE_POLICY`: require, warn or off; `default` when unset."""
    value = os.environ.get(SIGNATURE_POLICY, "").strip().lower() or default
    if value not in SIGNATURE_POLICIES:
        raise ToolchainError(
            f"{SIGNATURE_POLICY}={value!r}: choose one of {', '.join(SIGNATURE_POLICIES)}"
        )
    return value


def backend() -> str:
    """Which tool builds environments and freezes: `$PLUGIN_BACKEND`, pip (default) or uv."""
    value = os.environ.get(BACKEND, "").strip().lower() or "pip"
    if value not in BACKENDS:
        raise ToolchainError(f"{BACKEND}={value!r}: choose one of {', '.join(BACKENDS)}")
    return value


def number(variable: str, default: float, error: type[Exception], unit: str) -> float:
    """A non-negative number from `$variable` (an integer when `default` is), else `default`.

    `unit` names what it counts in the error raised (as `error`) for an invalid value.
    """
    value = os.environ.get(variable)
    if not value:
        return default
    parse = int if isinstance(default, int) else float
    try:
        result = parse(value)
    except ValueError:
        raise error(f"{variable}={value!r} is not a number of {unit}") from None
    if result < 0:
        raise error(f"{variable}={value!r} must not be negative")
    return result


def lock_timeout() -> float:
    """Seconds to wait for the runtime lock (`$PLUGIN_LOCK_TIMEOUT`, default 300)."""
    return number(LOCK_TIMEOUT, DEFAULT_LOCK_TIMEOUT, ToolchainError, "seconds")


def cron_timeout(error: type[Exception] = ToolchainError) -> int:
    """Seconds a cron job may run (`$PLUGIN_CRON_TIMEOUT`, default one hour; 0: no limit)."""
    return int(number(CRON_TIMEOUT, DEFAULT_CRON_TIMEOUT, error, "seconds"))


def healthcheck_timeout() -> float:
    """Seconds a plugin's `healthcheck` may take (`$PLUGIN_HEALTHCHECK_TIMEOUT`, default 30)."""
    return number(HEALTHCHECK_TIMEOUT, DEFAULT_HEALTHCHECK_TIMEOUT, ToolchainError, "seconds")


def archive_keep() -> int:
    """How many replaced versions of a plugin are archived (`$PLUGIN_ARCHIVE_KEEP`, 2)."""
    return int(number(ARCHIVE_KEEP, DEFAULT_ARCHIVE_KEEP, ToolchainError, "versions"))


def max_unpacked_bytes(error: type[Exception] = ToolchainError) -> int:
    """How much an archive may unpack to (`$PLUGIN_MAX_UNPACKED_MB`, default 8192 MiB)."""
    return int(number(MAX_UNPACKED_MB, DEFAULT_MAX_UNPACKED_MB, error, "MiB")) << 20


def max_compression_ratio(error: type[Exception] = ToolchainError) -> float:
    """How many times its size an archive may unpack to (`$PLUGIN_MAX_COMPRESSION_RATIO`)."""
    return float(number(MAX_RATIO, float(DEFAULT_MAX_RATIO), error, "times"))


def install_crontab() -> bool:
    """Whether the runtime's cron blocks go into the user's crontab (`$PLUGIN_INSTALL_CRONTAB`)."""
    return os.environ.get(INSTALL_CRONTAB, "").strip().lower() in _YES


def failpoint() -> str | None:
    """The crash tests' failpoint (`$PLUGIN_FAILPOINT`): where the process kills itself."""
    return os.environ.get(FAILPOINT) or None


def crash_at(point: str) -> None:
    """Kill this process with SIGKILL when `$PLUGIN_FAILPOINT` names `point` (crash tests)."""
    if failpoint() == point:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def source_date_epoch(error: type[Exception] = ToolchainError) -> int:
    """`$SOURCE_DATE_EPOCH` (reproducible builds) when set, else now; `error` if not an integer."""
    value = os.environ.get(SOURCE_DATE_EPOCH)
    if value is None:
        import time

        return int(time.time())
    try:
        return int(value)
    except ValueError:
        raise error(f"{SOURCE_DATE_EPOCH}={value!r} is not an integer") from None


def template_problems_file() -> str | None:
    """Where a template hook writes the answers it refuses (`$PLUGIN_TEMPLATE_PROBLEMS`)."""
    return os.environ.get(TEMPLATE_PROBLEMS) or None


def passed_to_daemons() -> dict[str, str]:
    """The settings that the process manager and its programs must see, those set."""
    return {k: os.environ[k] for k in PASSED_TO_DAEMONS if os.environ.get(k)}
