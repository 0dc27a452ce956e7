"""`plugins.status --metrics`: Prometheus' text format, read back by prometheus_client's own
parser, and the command's exit code when what it reports is failing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from toolchain.cli.services import status_main
from toolchain.running import metrics
from toolchain.running.resources import Resources
from toolchain.running.supervisor import Process


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value}, parsed as a Prometheus server would."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_label_values_are_escaped() -> None:
    assert metrics.escape('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert metrics.escape("plain-name_1") == "plain-name_1"


def test_workers_and_health_as_prometheus_reads_them() -> None:
    running = Process("svc", "svc.web.0", "RUNNING", 41, "pid 41", started=1_000)
    backoff = Process("svc", "svc.web.1", "BACKOFF", 0, "exited too quickly")
    new = Process("svc@b", "svc.web.0", "RUNNING", 43, "pid 43", started=1_090)
    figures = {
        41: Resources(12.5, 150.0, 50 * 2**20, 4, 9, 2),
        43: None,  # running, but /proc did not show it
    }
    odd = 'we"ird\\\nname'
    text = metrics.render(
        [running, backoff, new],
        {"svc:svc.web.1": 3},
        figures,
        {"svc": "ok", "sick": "failing", odd: "none"},
        now=1_100.7,
    )
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["plugin_daemon_cpu_seconds"] == "counter"  # the parser drops _total
    assert families["plugin_daemon_restarts"] == "counter"
    assert families["plugin_daemon_up"] == families["plugin_health_ok"] == "gauge"
    assert len(families) == len(metrics.FAMILIES)
    found = _samples(text)

    def worker(slot: str, name: str) -> tuple[tuple[str, str], ...]:
        return (("daemon", "web"), ("plugin", "svc"), ("worker", f"{slot}:{name}"))

    first, second, upgraded = (
        worker("svc", "svc.web.0"),
        worker("svc", "svc.web.1"),
        worker("svc@b", "svc.web.0"),
    )
    assert found[("plugin_daemon_up", first)] == 1
    assert found[("plugin_daemon_up", second)] == 0
    assert found[("plugin_daemon_up", upgraded)] == 1  # both slots apart, no duplicate
    assert found[("plugin_daemon_cpu_seconds_total", first)] == 12.5
    assert found[("plugin_daemon_cpu_usage_ratio", first)] == 1.5
    assert found[("plugin_daemon_resident_memory_bytes", first)] == 50 * 2**20
    assert found[("plugin_daemon_threads", first)] == 4
    assert found[("plugin_daemon_open_fds", first)] == 9
    assert found[("plugin_daemon_processes", first)] == 2
    assert found[("plugin_daemon_uptime_seconds", first)] == 100
    assert found[("plugin_daemon_start_time_seconds", first)] == 1_000
    assert found[("plugin_daemon_restarts_total", first)] == 0
    assert found[("plugin_daemon_restarts_total", second)] == 3
    # Not running, or no figures: only up, restarts (and uptime when it runs).
    assert {name for name, labels in found if labels == second} == {
        "plugin_daemon_up", "plugin_daemon_restarts_total"
    }  # fmt: skip
    assert ("plugin_daemon_threads", upgraded) not in found
    assert found[("plugin_health_ok", (("plugin", "svc"),))] == 1
    assert found[("plugin_health_ok", (("plugin", "sick"),))] == 0
    assert found[("plugin_health_ok", (("plugin", odd),))] == 1  # round trip of the escapes
    assert text.endswith("\n") and "\n\n" not in text


FAILING_CHECK = "#!/bin/sh\necho db down\nexit 3\n"


def test_metrics_exit_0_when_daemons_and_checks_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = Path(os.environ["PLUGIN_RUNTIME_HOME"])
    root = home / "plugins" / "svc"
    root.mkdir(parents=True)
    (root / "config.ini").write_text(
        "[general]\nname = svc\n_version = 1.0\n\n[extra_daemon_web]\n_cmd_and_args = sleep 60\n"
    )
    (root / "healthcheck").write_text(FAILING_CHECK)
    (root / "healthcheck").chmod(0o755)
    # Without --metrics: the process manager is not running and the check fails, exit 1.
    assert status_main([]) == 1
    assert status_main(["--json"]) == 1
    capsys.readouterr()
    assert status_main(["--metrics"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    found = _samples(out)
    assert found == {("plugin_health_ok", (("plugin", "svc"),)): 0}  # no daemon sample
    with pytest.raises(SystemExit) as exited:
        status_main(["--metrics", "--json"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
