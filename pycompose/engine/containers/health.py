"""Health checks: the rules, as dockerd applies them (pure functions, no kernel access).

``Config.Healthcheck`` is ``{Test, Interval, Timeout, StartPeriod, StartInterval, Retries}``
(durations in nanoseconds). :func:`validate` checks a create request's with dockerd's
messages; :func:`merge` combines it with the image's (the container's Test wins when set;
zero durations and retries inherit the image's); :func:`settings` turns the merged one into
what the prober runs (``None`` without a check, or with ``["NONE"]``).

``State.Health`` is ``{"Status", "FailingStreak", "Log"}``: :func:`on_start` resets it to
``starting``, :func:`apply_result` records one probe (the last five are kept) and says when
the status changed, :func:`on_monitor_stopped` marks it ``unhealthy`` as dockerd does when a
container stops or is paused. The probes themselves run in
:mod:`pycompose.engine.containers.probes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycompose.engine.errors import InvalidArgument

SECOND = 1_000_000_000
MIN_DURATION = 1_000_000
"""dockerd's minimum for any non-zero duration: 1ms."""
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
"""Bytes of probe output kept (dockerd appends ``...`` when there was more)."""

DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")
FIELDS = ("Test", *DURATIONS, "Retries")
TEST_TYPES = ("CMD", "CMD-SHELL", "NONE")
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


def validate(value: Any) -> dict[str, Any] | None:
    """A create request's ``Healthcheck`` checked (400 naming the problem), or ``None``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument("Healthcheck must be a JSON object")
    for key in value:
        if key not in FIELDS:
            raise InvalidArgument(f"unknown field Healthcheck.{key} in the create request")
    test = value.get("Test")
    if test is not None:
        if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
            raise InvalidArgument("Healthcheck.Test must be a list of strings")
        if test and test[0] not in TEST_TYPES:
            raise InvalidArgument(f"Healthcheck.Test: unknown health check type {test[0]!r} "
                                  "(want CMD, CMD-SHELL or NONE)")  # fmt: skip
        if test and test[0] != "NONE" and not any(test[1:]):
            raise InvalidArgument(f"Healthcheck.Test: {test[0]} needs a command")
    for key in (*DURATIONS, "Retries"):
        number = value.get(key)
        if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
            raise InvalidArgument(f"Healthcheck.{key} must be an integer")
    for key in DURATIONS:
        number = value.get(key) or 0
        if number != 0 and number < MIN_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if (value.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    return dict(value)


def merge(user: Mapping[str, Any] | None, image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """dockerd's merge of the container's Healthcheck with the image's."""
    if not image:
        return dict(user) if user is not None else None
    if user is None:
        return dict(image)
    out = dict(user)
    if not out.get("Test"):
        out["Test"] = image.get("Test")
    for key in (*DURATIONS, "Retries"):
        if not out.get(key) and image.get(key):
            out[key] = image[key]
    return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Settings:
    """What the prober runs, with dockerd's defaults filled in (seconds)."""

    argv: tuple[str, ...]
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int
    timeout_text: str
    """The timeout as Go prints it (``30s``), for the timeout message."""


def settings(config: Mapping[str, Any]) -> Settings | None:
    """The health check of a merged container config, ``None`` when it has none."""
    check = config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    if test[0] == "CMD":
        argv = tuple(test[1:])
    else:
        argv = (*(config.get("Shell") or ("/bin/sh", "-c")), *test[1:])
    timeout = int(check.get("Timeout") or DEFAULT_TIMEOUT)
    return Settings(
        argv=argv,
        interval=int(check.get("Interval") or DEFAULT_INTERVAL) / SECOND,
        timeout=timeout / SECOND,
        start_period=int(check.get("StartPeriod") or DEFAULT_START_PERIOD) / SECOND,
        start_interval=int(check.get("StartInterval") or DEFAULT_START_INTERVAL) / SECOND,
        retries=int(check.get("Retries") or 0) or DEFAULT_RETRIES,
        timeout_text=go_duration_text(timeout),
    )


def next_delay(s: Settings, since_start: float, status: str) -> float:
    """Seconds until the next probe: the start interval while starting in the start period."""
    if since_start >= s.start_period or status != STARTING:
        return s.interval
    return s.start_interval


def on_start(previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """``State.Health`` when the container (re)starts: starting, streak 0, the log kept."""
    log = list(previous.get("Log") or []) if previous else []
    return {"Status": STARTING, "FailingStreak": 0, "Log": log}


def on_monitor_stopped(health: dict[str, Any]) -> None:
    """dockerd marks the health ``unhealthy`` when probing stops (stop, exit, pause)."""
    health["Status"] = UNHEALTHY


def apply_result(health: dict[str, Any], result: Mapping[str, Any], retries: int,
                 in_start_period: bool) -> bool:  # fmt: skip
    """Record one probe result in ``health`` (modified); True when the status changed.

    A success makes the container healthy (and ends the start period); a failure while
    starting inside the start period does not count; otherwise it lengthens the failing
    streak, and ``retries`` failures in a row make it unhealthy.
    """
    before = health.get("Status") or UNHEALTHY
    health["Log"] = [*(health.get("Log") or [])[-(MAX_LOG_ENTRIES - 1) :], dict(result)]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
    elif not (before == STARTING and in_start_period):
        health["FailingStreak"] = int(health.get("FailingStreak") or 0) + 1
        if health["FailingStreak"] >= retries:
            health["Status"] = UNHEALTHY
    return health.get("Status") != before


def status_of(health: Mapping[str, Any] | None) -> str:
    """The status the ``health`` filter and ``ps`` see: ``none`` without a health check."""
    if health is None:
        return "none"
    return str(health.get("Status") or UNHEALTHY)


def ps_suffix(health: Mapping[str, Any] | None) -> str:
    """What ``docker ps`` appends to "Up 3 seconds": `` (healthy)``, `` (health: starting)``."""
    status = status_of(health)
    if status == "none":
        return ""
    return " (health: starting)" if status == STARTING else f" ({status})"


def limit_output(data: bytes) -> str:
    """Probe output as dockerd keeps it: the first 4096 bytes, ``...`` if there was more."""
    text = data[:MAX_OUTPUT].decode("utf-8", "replace")
    return text + "..." if len(data) > MAX_OUTPUT else text


def timeout_output(s: Settings, partial: bytes) -> str:
    """The Output of a probe killed at its timeout, with what it printed until then."""
    message = f"Health check exceeded timeout ({s.timeout_text})"
    text = limit_output(partial)
    return f"{message}: {text}" if text else message


def go_duration_text(ns: int) -> str:
    """A duration in nanoseconds as Go's ``time.Duration.String`` prints it (``1m30s``)."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1000)}µs"
    if ns < SECOND:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * SECOND)
    minutes, rest = divmod(rest, 60 * SECOND)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{sign}{text}{_fraction(rest, SECOND)}s"


def _fraction(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = f"{part:0{len(str(unit)) - 1}d}".rstrip("0")
    return f"{whole}.{digits}"


_UNITS_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 1_000_000, "s": SECOND, "m": 60 * SECOND,
             "h": 3600 * SECOND}  # fmt: skip
_FLAGS = {"--interval": "Interval", "--timeout": "Timeout", "--start-period": "StartPeriod",
          "--start-interval": "StartInterval", "--retries": "Retries"}  # fmt: skip


def parse_go_duration(text: str) -> int:
    """A Go duration (``1m30s``, ``500ms``, ``0``) in nanoseconds; ValueError if it is not one."""
    import re

    text = text.strip()
    if text in ("0", "-0", "+0"):
        return 0
    match = re.fullmatch(r"([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+", text)
    if match is None:
        raise ValueError(f"time: invalid duration {text!r}")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    total = round(sum(float(n) * _UNITS_NS[u] for n, u in parts))
    return -total if match.group(1) == "-" else total


def parse_instruction(value: str) -> dict[str, Any]:
    """A Dockerfile ``HEALTHCHECK`` instruction's arguments (``--interval=5s CMD curl x``,
    ``NONE``) as an image config's ``Healthcheck``, with the builder's errors."""
    import json

    words = value.strip().split(None, 1)
    out: dict[str, Any] = {}
    while words and words[0].startswith("--"):
        name, eq, raw = words[0].partition("=")
        if name not in _FLAGS or not eq:
            raise InvalidArgument(
                f"HEALTHCHECK: unknown flag {words[0]!r} (want --interval=, "
                "--timeout=, --start-period=, --start-interval=, --retries=)"
            )
        key = _FLAGS[name]
        try:
            out[key] = int(raw) if key == "Retries" else parse_go_duration(raw)
        except ValueError as err:
            raise InvalidArgument(f"HEALTHCHECK {name}: {err}") from None
        if key == "Retries" and out[key] < 0:
            raise InvalidArgument("--retries cannot be negative")
        if key != "Retries" and out[key] != 0 and out[key] < MIN_DURATION:
            # dockerd's builder words it so for every duration flag
            raise InvalidArgument(f'Interval "{name[2:]}" cannot be less than 1ms')
        words = words[1].split(None, 1) if len(words) > 1 else []
    kind = words[0].upper() if words else ""
    rest = words[1].strip() if len(words) > 1 else ""
    if kind == "NONE":
        if rest or out:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if not kind:
        raise InvalidArgument("HEALTHCHECK requires an argument")
    if kind != "CMD":
        raise InvalidArgument(f"Unknown type {json.dumps(kind)} in HEALTHCHECK (try CMD)")
    if not rest:
        raise InvalidArgument("HEALTHCHECK CMD needs a command")
    if rest.startswith("["):
        try:
            argv = json.loads(rest)
        except ValueError:
            argv = None
        if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
            return {"Test": ["CMD", *argv], **out}
    return {"Test": ["CMD-SHELL", rest], **out}
