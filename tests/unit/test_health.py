"""Health check rules (pycompose.engine.containers.health): request checks with dockerd's
messages, the image merge, defaults, state transitions, the ps column and filter, the
HEALTHCHECK instruction, and the --health-* flags as docker's CLI sends them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pycompose.cli.container_opts import RunOptions, healthcheck
from pycompose.cli.container_parse import OptionError
from pycompose.engine.containers import health
from pycompose.engine.containers.bundle import merge_image_config
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.containers.request import validate_create
from pycompose.engine.containers.views import filter_records, status_text
from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.archive import apply_changes

MS = 1_000_000
S = 1_000_000_000


@pytest.mark.parametrize(("check", "message"), [
    ({"Test": ["HTTP", "/"]}, "unknown health check type 'HTTP'"),
    ({"Test": ["CMD-SHELL"]}, "CMD-SHELL needs a command"),
    ({"Test": "CMD true"}, "Test must be a list of strings"),
    ({"Interval": -1}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Interval": MS - 1}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Timeout": 5}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"StartPeriod": -S}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"StartInterval": 1}, "StartInterval in Healthcheck cannot be less than 1ms"),
    ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ({"Interval": "5s"}, "Healthcheck.Interval must be an integer"),
    ({"Every": 1}, "unknown field Healthcheck.Every"),
    ("CMD true", "Healthcheck must be a JSON object"),
])  # fmt: skip
def test_validate_refuses_with_dockerds_words(check: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_create({"Image": "busybox", "Healthcheck": check})


def test_validate_accepts_zero_and_minimum_values() -> None:
    for check in (
        {"Test": ["NONE"]},
        {},
        {"Interval": 0, "Retries": 0},
        {"Timeout": MS},
        {"Test": ["CMD", "true"], "Interval": S, "StartInterval": MS},
        None,
    ):
        config, _, _ = validate_create({"Image": "busybox", "Healthcheck": check})
        assert config["Healthcheck"] == check


def test_merge_rules() -> None:
    image = {"Test": ["CMD-SHELL", "curl x"], "Interval": 5 * S, "Timeout": 2 * S,
             "StartPeriod": S, "StartInterval": S, "Retries": 4}  # fmt: skip
    assert health.merge(None, image) == image
    assert health.merge(None, None) is None
    assert health.merge({"Test": ["CMD", "a"]}, None) == {"Test": ["CMD", "a"]}
    # The container's Test wins; its zero durations and retries take the image's.
    assert health.merge({"Test": ["CMD", "a"], "Interval": 0, "Retries": 1}, image) == {
        **image,
        "Test": ["CMD", "a"],
        "Retries": 1,
    }
    assert health.merge({"Interval": 9 * S}, image) == {**image, "Interval": 9 * S}
    assert health.merge({"Test": ["NONE"]}, image) == {**image, "Test": ["NONE"]}
    config: dict[str, Any] = {"Healthcheck": {"Timeout": S}}
    assert merge_image_config(config, {"config": {"Healthcheck": image}}) == []
    assert config["Healthcheck"] == {**image, "Timeout": S}
    config = {}
    merge_image_config(config, {"config": {}})
    assert "Healthcheck" not in config


def test_settings_defaults_and_shell() -> None:
    assert health.settings({}) is None
    assert health.settings({"Healthcheck": {"Test": ["NONE"], "Interval": S}}) is None
    assert health.settings({"Healthcheck": {"Interval": S}}) is None  # no test: no check
    s = health.settings({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f x"]}})
    assert s == health.Settings(("/bin/sh", "-c", "curl -f x"), 30.0, 30.0, 0.0, 5.0, 3, "30s")
    s = health.settings({"Shell": ["/bin/bash", "-ec"],
                         "Healthcheck": {"Test": ["CMD-SHELL", "x"], "Timeout": 1500 * MS,
                                         "Retries": 1, "StartPeriod": 2 * S}})  # fmt: skip
    assert s is not None and s.argv == ("/bin/bash", "-ec", "x") and s.retries == 1
    assert (s.timeout, s.timeout_text, s.start_period) == (1.5, "1.5s", 2.0)
    s = health.settings({"Healthcheck": {"Test": ["CMD", "/check", "a b"]}})
    assert s is not None and s.argv == ("/check", "a b")


def test_next_delay_uses_the_start_interval_only_while_starting() -> None:
    s = health.Settings(("true",), 10.0, 30.0, 60.0, 1.0, 3, "30s")
    assert health.next_delay(s, 5.0, "starting") == 1.0
    assert health.next_delay(s, 5.0, "healthy") == 10.0  # a success ends the start period
    assert health.next_delay(s, 61.0, "starting") == 10.0


def _result(code: int, output: str = "") -> dict[str, Any]:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": output}


def test_transitions() -> None:
    h = health.on_start(None)
    assert h == {"Status": "starting", "FailingStreak": 0, "Log": []}
    # Failures in the start period do not count.
    assert not health.apply_result(h, _result(1), retries=2, in_start_period=True)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    # After it they do; `retries` in a row make it unhealthy.
    assert not health.apply_result(h, _result(1), retries=2, in_start_period=False)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    assert health.apply_result(h, _result(-1), retries=2, in_start_period=False)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    assert not health.apply_result(h, _result(1), retries=2, in_start_period=False)
    assert h["FailingStreak"] == 3
    assert health.apply_result(h, _result(0, "ok"), retries=2, in_start_period=False)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    # Once healthy, the start period shields nothing.
    assert not health.apply_result(h, _result(1), retries=2, in_start_period=True)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)
    assert len(h["Log"]) == 5 and h["Log"][-1] == _result(1)  # the last five
    assert h["Log"][-2]["Output"] == "ok"
    health.on_monitor_stopped(h)
    assert h["Status"] == "unhealthy"
    restarted = health.on_start(h)
    assert (restarted["Status"], restarted["FailingStreak"]) == ("starting", 0)
    assert restarted["Log"] == h["Log"]


def test_output_and_durations_as_docker_prints_them() -> None:
    assert health.limit_output(b"x" * 4096) == "x" * 4096
    assert health.limit_output(b"x" * 5000) == "x" * 4096 + "..."
    assert health.limit_output(b"caf\xc3\xa9\n") == "café\n"
    s = health.Settings(("true",), 30.0, 30.0, 0.0, 5.0, 3, "30s")
    assert health.timeout_output(s, b"") == "Health check exceeded timeout (30s)"
    assert health.timeout_output(s, b"half\n") == "Health check exceeded timeout (30s): half\n"
    cases = {
        0: "0s",
        30 * S: "30s",
        300 * MS: "300ms",
        1500 * MS: "1.5s",
        90 * S: "1m30s",
        3600 * S: "1h0m0s",
        1500: "1.5µs",
        7: "7ns",
        3 * 3600 * S + 5 * S: "3h0m5s",
    }
    for ns, text in cases.items():
        assert health.go_duration_text(ns) == text
        assert health.parse_go_duration(text) == ns
    with pytest.raises(ValueError):
        health.parse_go_duration("5 seconds")


def _record(status: str, state: dict[str, Any] | None) -> ContainerRecord:
    rec = ContainerRecord(id=status[0] * 64, name=status, created="2026-01-01T00:00:00Z",
                          image_id="sha256:" + "b" * 64, image_name="busybox",
                          config={}, host_config={})  # fmt: skip
    rec.state.status = "running"
    rec.state.started_at = "2026-01-01T00:00:00.000000000Z"
    rec.state.health = state
    return rec


def test_ps_status_and_health_filter() -> None:
    now = dt.datetime(2026, 1, 1, 0, 0, 3, tzinfo=dt.UTC)
    recs = {s: _record(s, {"Status": s, "FailingStreak": 0, "Log": []})
            for s in ("starting", "healthy", "unhealthy")}  # fmt: skip
    plain = _record("none", None)
    assert status_text(recs["starting"], now) == "Up 3 seconds (health: starting)"
    assert status_text(recs["healthy"], now) == "Up 3 seconds (healthy)"
    assert status_text(recs["unhealthy"], now) == "Up 3 seconds (unhealthy)"
    assert status_text(plain, now) == "Up 3 seconds"
    recs["healthy"].state.status = "paused"
    assert status_text(recs["healthy"], now) == "Up 3 seconds (Paused)"
    everything = [*recs.values(), plain]
    for value in ("starting", "healthy", "unhealthy"):
        assert filter_records(everything, {"health": [value]}, all_states=True) == [recs[value]]
    assert filter_records(everything, {"health": ["none"]}, all_states=True) == [plain]
    assert len(filter_records(everything, {"health": ["healthy", "none"]}, all_states=True)) == 2


def test_healthcheck_instruction_for_commit_and_import() -> None:
    config = apply_changes(
        {},
        [
            "HEALTHCHECK --interval=5s --timeout=1s --start-period=1m "
            "--start-interval=500ms --retries=2 CMD curl -f http://x/"
        ],
    )
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://x/"],
                                     "Interval": 5 * S, "Timeout": S, "StartPeriod": 60 * S,
                                     "StartInterval": 500 * MS, "Retries": 2}  # fmt: skip
    config = apply_changes({}, ['HEALTHCHECK CMD ["/check", "--fast"]'])
    assert config["Healthcheck"] == {"Test": ["CMD", "/check", "--fast"]}
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}
    cases = [
        ("HEALTHCHECK NONE x", "takes no arguments"),
        ("HEALTHCHECK ping x", r'Unknown type "PING" in HEALTHCHECK \(try CMD\)'),
        ("HEALTHCHECK CMD", "needs a command"),
        ("HEALTHCHECK", "requires an argument"),
        ("HEALTHCHECK --every=5s CMD x", "unknown flag"),
        ("HEALTHCHECK --interval=1ns CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --timeout=-1s CMD x", 'Interval "timeout" cannot be less than 1ms'),
        ("HEALTHCHECK --interval=soon CMD x", "invalid duration"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            apply_changes({}, [bad])


def test_flags_send_what_docker_cli_sends() -> None:
    # Bodies captured from docker CLI 28.2.2 for the same flags.
    def body(**flags: Any) -> dict[str, Any] | None:
        return healthcheck(RunOptions(image="busybox", environ={}, **flags))

    assert body(health_cmd="true", health_interval="1s") == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": S,
    }
    assert body(health_interval="2s") == {"Interval": 2 * S}
    assert body(health_cmd="x", health_timeout="1m30s", health_retries=2,
                health_start_period="500ms", health_start_interval="1s") == {
        "Test": ["CMD-SHELL", "x"], "Timeout": 90 * S, "StartPeriod": 500 * MS,
        "StartInterval": S, "Retries": 2}  # fmt: skip
    assert body(no_healthcheck=True) == {"Test": ["NONE"]}
    assert body(health_cmd="", health_retries=0) is None
    assert body() is None
    for flags, message in (({"health_start_interval": "-1s"}, "--health-start-interval cannot be "
                                                               "negative"),
                           ({"health_timeout": "-1s"}, "--health-timeout cannot be negative"),
                           ({"health_retries": -1}, "--health-retries cannot be negative"),
                           ({"no_healthcheck": True, "health_cmd": "x"}, "conflicts"),
                           ({"health_interval": "soon"}, "--health-interval")):  # fmt: skip
        with pytest.raises(OptionError, match=message):
            body(**flags)
