"""What follows a commit in the runtime: the override file, then cron jobs and daemons.

Installs, rollbacks, provisioning and the recovery of an interrupted commit all end with
`finalize`; an uninstall starts with `before_uninstall`. A failure of the running side is
a warning: the plugin is installed, and `plugins.reload` applies it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from toolchain.core.errors import ToolchainError
from toolchain.core.layout import Runtime
from toolchain.installer import overrides

if TYPE_CHECKING:
    from toolchain.running.health import Check

log = logging.getLogger(__name__)


def _running(which: str, rt: Runtime, name: str) -> None:
    from toolchain.running import services  # supervisor's client: only when something changed

    try:
        getattr(services, which)(name, rt.home)
    except ToolchainError as exc:
        log.warning("plugin %s: cron jobs and daemons not updated: %s", name, exc)


def finalize(
    rt: Runtime,
    name: str,
    warnings: Sequence[str] = (),
    *,
    gate: bool = False,
    restart: bool = True,
    revertible: bool = False,
) -> Check | None:
    """After a commit: create the override file if absent, start cron jobs and daemons
    (running workers are swapped for new ones, `running.hotswap`); log the `warnings` of
    its staging (what PLUGIN_SIGNATURE_POLICY=warn let in).

    With `gate`, wait for the plugin to pass its health checks: the first failing check
    is returned when it does not (None: healthy, or nothing to check).
    Without `restart`, daemons whose program files did not change keep running. With
    `revertible` (the caller can swap the previous version back), new workers that fail
    the checks are stopped and the old ones keep serving; otherwise the new ones stay.
    """
    from toolchain.running import hotswap  # supervisor's client: only when something changed

    for warning in warnings:
        log.warning("%s", warning)
    overrides.write_template(rt, name)
    warn_unknown_keys(rt, name)
    try:
        found = hotswap.apply(rt.home, name, gate_it=gate, restart=restart, revertible=revertible)
    except ToolchainError as exc:
        log.warning("plugin %s: cron jobs and daemons not updated: %s", name, exc)
        return None
    return next((c for c in found.checks if not c.ok), None)


def warn_unknown_keys(rt: Runtime, name: str) -> None:
    """Warn, naming file and key, about override keys plugin `name` does not have."""
    try:
        unknown = overrides.unknown_keys(rt, name)
    except ToolchainError:
        return  # a broken override file is an error where it is read
    for where in unknown:
        log.warning("%s: plugin %s has no such key; a typo?", where, name)


def before_uninstall(rt: Runtime, name: str) -> None:
    """Before an uninstall: stop the plugin's daemons and drop its cron jobs."""
    _running("before_uninstall", rt, name)


def after_uninstall(rt: Runtime, name: str) -> None:
    """After an uninstall (again, when recovery finishes one): no daemon, no cron job, no
    cached env of `name` is left."""
    from toolchain.runtime import plugin_env

    _running("before_uninstall", rt, name)  # the running side only regenerates without it
    plugin_env.drop_cache(rt, name)
