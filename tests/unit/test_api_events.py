"""The event bus, Docker's event filters and since/until handling."""

from __future__ import annotations

import asyncio
import time

import pytest

from pycompose.engine.api.events import (
    Event,
    EventBus,
    check_event_filters,
    event_matches,
    parse_timestamp,
    stream_events,
)
from pycompose.engine.errors import InvalidArgument


def _ev(
    type_: str = "container", action: str = "start", actor: str = "abc123", **attrs: str
) -> Event:
    return Event(type_, action, actor, attrs, "local", 1_700_000_000_123_456_789)


def test_event_json_has_dockers_shape() -> None:
    data = _ev(image="busybox", name="web").to_json()
    assert data == {
        "status": "start",
        "id": "abc123",
        "from": "busybox",
        "Type": "container",
        "Action": "start",
        "Actor": {"ID": "abc123", "Attributes": {"image": "busybox", "name": "web"}},
        "scope": "local",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_123_456_789,
    }
    net = _ev("network", "connect", "n1").to_json()
    assert "status" not in net and net["Type"] == "network"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"type": ["container"]}, True),
        ({"type": ["image", "network"]}, False),
        ({"event": ["start", "die"]}, True),
        ({"event": ["stop"]}, False),
        ({"container": ["abc"]}, True),  # id prefix
        ({"container": ["web"]}, True),  # name
        ({"container": ["zzz"]}, False),
        ({"image": ["busy"]}, True),
        ({"label": ["com.docker.compose.project=demo"]}, True),
        ({"label": ["com.docker.compose.project"]}, True),
        ({"label": ["com.docker.compose.project=other"]}, False),
        ({"type": ["container"], "event": ["die"]}, False),
        ({"network": ["abc"]}, False),
    ],
)
def test_event_filters(filters: dict[str, list[str]], expected: bool) -> None:
    event = _ev(image="busybox", name="web", **{"com.docker.compose.project": "demo"})
    assert event_matches(event, filters) is expected


def test_health_status_event_matches_its_prefix() -> None:
    assert event_matches(_ev(action="health_status: healthy"), {"event": ["health_status"]})


def test_filter_validation() -> None:
    check_event_filters({"type": ["container"], "scope": ["local"]})
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        check_event_filters({"colour": ["x"]})
    with pytest.raises(InvalidArgument, match="type=boat"):
        check_event_filters({"type": ["boat"]})


def test_parse_timestamp_forms() -> None:
    now = 1_700_000_000 * 10**9
    assert parse_timestamp("1700000000", now_ns=now) == now
    assert parse_timestamp("1700000000.5", now_ns=now) == now + 500_000_000
    assert parse_timestamp("10m", now_ns=now) == now - 600 * 10**9
    assert parse_timestamp("1h30m", now_ns=now) == now - 5400 * 10**9
    assert parse_timestamp("2023-11-14T22:13:20Z") == now
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == now
    with pytest.raises(InvalidArgument, match="invalid time value 'yesterday'"):
        parse_timestamp("yesterday")


def test_publish_rejects_unknown_types() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        EventBus().publish("boat", "sail", "x")


def test_stream_replays_history_then_goes_live_until_deadline() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        start = time.time_ns()
        bus.publish("container", "create", "c1")
        bus.publish("image", "pull", "busybox")
        got: list[str] = []

        async def consume() -> None:
            until = time.time_ns() + 300_000_000
            async for ev in stream_events(bus, {"type": ["container"]}, start, until):
                got.append(f"{ev.actor_id}:{ev.action}")

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        bus.publish("container", "start", "c1")
        bus.publish("network", "create", "n1")
        await asyncio.wait_for(task, 2)  # ends by itself at `until`
        return got

    assert asyncio.run(scenario()) == ["c1:create", "c1:start"]


def test_stream_with_until_in_the_past_replays_only() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        bus.publish("container", "create", "c1")
        until = time.time_ns()
        await asyncio.sleep(0.001)
        bus.publish("container", "start", "c1")
        return [e.action async for e in stream_events(bus, {}, None, until)]

    assert asyncio.run(scenario()) == ["create"]


def test_publish_threadsafe_needs_a_bound_loop() -> None:
    bus = EventBus()
    with pytest.raises(RuntimeError, match="not bound"):
        bus.publish_threadsafe("container", "start", "c1")

    async def scenario() -> str:
        bus.bind_loop(asyncio.get_running_loop())
        async with bus.subscribe() as sub:
            await asyncio.to_thread(bus.publish_threadsafe, "container", "die", "c1")
            return (await asyncio.wait_for(sub.get(), 2)).action

    assert asyncio.run(scenario()) == "die"
