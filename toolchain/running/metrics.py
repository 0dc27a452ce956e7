"""`plugins.status --metrics`: the daemons and health in Prometheus' text format (0.0.4).

Written for node_exporter's textfile collector (`plugins.status --metrics > f.tmp && mv
f.tmp f.prom`). Every family has its `# HELP` and `# TYPE` lines, samples or not; a worker
that is not running has `plugin_daemon_up 0` and its restart count, nothing else; workers
are labelled by plugin, daemon and worker, the worker being supervisor's `group:name`, so
both slots of a plugin being upgraded stay apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from toolchain.running.resources import Resources

if TYPE_CHECKING:  # only the type: rendering never talks to supervisord
    from toolchain.running.supervisor import Process

# name: (type, help), in the order they are written.
FAMILIES = {
    "plugin_daemon_up": ("gauge", "1 when the worker is RUNNING, else 0."),
    "plugin_daemon_cpu_seconds_total": (
        "counter",
        "User and system CPU time of the worker's process group, reaped children included.",
    ),
    "plugin_daemon_cpu_usage_ratio": (
        "gauge",
        "CPU used by the worker's process group over a 0.2 s window; 1 is one full core.",
    ),
    "plugin_daemon_resident_memory_bytes": (
        "gauge",
        "Resident memory of the worker's process group (pages shared by forks in each).",
    ),
    "plugin_daemon_threads": ("gauge", "Threads of the worker's process group."),
    "plugin_daemon_open_fds": ("gauge", "Open file descriptors of the worker's process group."),
    "plugin_daemon_processes": ("gauge", "Processes in the worker's process group."),
    "plugin_daemon_restarts_total": (
        "counter",
        "Restarts after the worker exited on its own, since the plugin was installed.",
    ),
    "plugin_daemon_uptime_seconds": ("gauge", "Seconds since the running worker started."),
    "plugin_daemon_start_time_seconds": (
        "gauge",
        "When the running worker started, in seconds since the epoch.",
    ),
    "plugin_health_ok": ("gauge", "0 when a health check of the plugin fails, else 1."),
}


def escape(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    pairs = ",".join(f'{key}="{escape(text)}"' for key, text in labels.items())
    number = str(value) if isinstance(value, int) else repr(float(value))
    return f"{name}{{{pairs}}} {number}"


def _worker_samples(
    process: Process, restarts: int, figures: Resources | None, now: float
) -> dict[str, float]:
    running = process.state == "RUNNING"
    found: dict[str, float] = {"plugin_daemon_up": int(running)}
    if figures is not None:
        found["plugin_daemon_cpu_seconds_total"] = figures.cpu_seconds
        found["plugin_daemon_cpu_usage_ratio"] = round(figures.cpu_percent / 100, 4)
        found["plugin_daemon_resident_memory_bytes"] = figures.rss_bytes
        found["plugin_daemon_threads"] = figures.threads
        found["plugin_daemon_open_fds"] = figures.open_files
        found["plugin_daemon_processes"] = figures.processes
    found["plugin_daemon_restarts_total"] = restarts
    if running and process.started:
        found["plugin_daemon_uptime_seconds"] = max(0, int(now) - process.started)
        found["plugin_daemon_start_time_seconds"] = process.started
    return found


def render(
    processes: Sequence[Process],
    restarts: Mapping[str, int],
    figures: Mapping[int, Resources | None],
    health: Mapping[str, str],
    now: float,
) -> str:
    """The exposition text of these workers (restarts by `group:name`, figures by pid) and
    of these plugins' health states (`ok`, `failing`, `none`), at time `now`."""
    samples: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for process in sorted(processes, key=lambda p: (p.plugin, p.spec)):
        parts = process.name.split(".")  # PLUGIN.DAEMON.N (a watcher has its own name)
        daemon = parts[1] if len(parts) == 3 else process.name
        labels = {"plugin": process.plugin, "daemon": daemon, "worker": process.spec}
        found = figures.get(process.pid) if process.pid else None
        values = _worker_samples(process, restarts.get(process.spec, 0), found, now)
        for name, value in values.items():
            samples[name].append(_sample(name, labels, value))
    for plugin, state in sorted(health.items()):
        ok = int(state != "failing")
        samples["plugin_health_ok"].append(_sample("plugin_health_ok", {"plugin": plugin}, ok))
    lines = []
    for name, (kind, text) in FAMILIES.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines) + "\n"
