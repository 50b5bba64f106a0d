"""The engine's event bus and Docker's ``/events`` filters and time arguments.

Every part of the engine publishes what happens (container create/start/die, image pull,
network connect...) to one :class:`EventBus`; ``GET /events`` subscribers receive them as
Docker-shaped JSON lines. The bus keeps a bounded history so ``since`` can replay.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pycompose.engine.errors import InvalidArgument

EVENT_FILTERS = frozenset(
    {"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
     "scope", "secret", "service", "type", "volume"}
)  # fmt: skip
EVENT_TYPES = frozenset(
    {"builder", "config", "container", "daemon", "image", "network", "node", "plugin",
     "secret", "service", "volume"}
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One thing that happened, in Docker's terms (``Type``, ``Action``, ``Actor``)."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    scope: str = "local"
    time_nano: int = 0

    def to_json(self) -> dict[str, Any]:
        """The event as ``GET /events`` sends it, deprecated top-level fields included."""
        out: dict[str, Any] = {}
        if self.type in ("container", "image"):
            # Old clients still read status/id/from; Docker keeps sending them for these types.
            out["status"] = self.action
            out["id"] = self.actor_id
            if "image" in self.attributes:
                out["from"] = self.attributes["image"]
        out.update(
            Type=self.type,
            Action=self.action,
            Actor={"ID": self.actor_id, "Attributes": dict(self.attributes)},
            scope=self.scope,
            time=self.time_nano // 1_000_000_000,
            timeNano=self.time_nano,
        )
        return out


class Subscription:
    """Events published after subscribing, in order; ``overflowed`` if the reader fell behind."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflowed = False

    def _offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def get(self) -> Event:
        """The next event (waits for one)."""
        return await self._queue.get()


class EventBus:
    """Fan-out of engine events to subscribers, with a replay history of ``history`` events.

    :meth:`publish` must be called on the daemon's event loop thread; other threads use
    :meth:`publish_threadsafe`.
    """

    def __init__(self, history: int = 2048, queue_size: int = 4096) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._subs: set[Subscription] = set()
        self._queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def publish(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
        *,
        scope: str = "local",
    ) -> Event:
        """Record an event and deliver it to every subscriber; returns the event."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = Event(type, action, actor_id, dict(attributes or {}), scope, time.time_ns())
        with self._lock:
            self._history.append(event)
        for sub in list(self._subs):
            sub._offer(event)
        return event

    def publish_threadsafe(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """:meth:`publish` from a thread other than the event loop's."""
        if self._loop is None:
            raise RuntimeError("the event bus is not bound to a running loop yet")
        self._loop.call_soon_threadsafe(self.publish, type, action, actor_id, attributes)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the daemon's loop, for :meth:`publish_threadsafe`."""
        self._loop = loop

    @property
    def listeners(self) -> int:
        """How many subscribers are connected (``NEventsListener`` in /info)."""
        return len(self._subs)

    def history(self) -> list[Event]:
        """The retained past events, oldest first."""
        with self._lock:
            return list(self._history)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Receive events published while the context is open."""
        sub = Subscription(self._queue_size)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)


def check_event_filters(filters: Mapping[str, list[str]]) -> None:
    """Refuse filter values Docker refuses (unknown types, scopes)."""
    for name in filters:
        if name not in EVENT_FILTERS:
            raise InvalidArgument(f"invalid filter '{name}'")
    for value in filters.get("type", []):
        if value not in EVENT_TYPES:
            raise InvalidArgument(f"invalid filter 'type={value}'")
    for value in filters.get("scope", []):
        if value not in ("local", "swarm"):
            raise InvalidArgument(f"invalid filter 'scope={value}'")


def _prefix_any(values: list[str], *candidates: str | None) -> bool:
    return any(c is not None and c.startswith(v) for v in values for c in candidates)


def _match_labels(values: list[str], attributes: Mapping[str, str]) -> bool:
    for value in values:
        key, sep, want = value.partition("=")
        if key not in attributes or (sep and attributes[key] != want):
            return False
    return True


def event_matches(event: Event, filters: Mapping[str, list[str]]) -> bool:
    """Docker's event filter semantics: every given filter must match (values are OR-ed)."""
    attrs = event.attributes
    checks: list[tuple[str, bool]] = [
        ("type", event.type in filters.get("type", [])),
        ("event", any(event.action == v or event.action.startswith(v + ":")
                      for v in filters.get("event", []))),
        ("scope", event.scope in filters.get("scope", [])),
        ("label", _match_labels(filters.get("label", []), attrs)),
    ]  # fmt: skip
    by_type = {
        "container": "container",
        "network": "network",
        "volume": "volume",
        "daemon": "daemon",
        "plugin": "plugin",
        "config": "config",
        "secret": "secret",
        "service": "service",
        "node": "node",
    }
    for name, etype in by_type.items():
        if name in filters:
            checks.append(
                (
                    name,
                    event.type == etype
                    and _prefix_any(filters[name], event.actor_id, attrs.get("name")),
                )
            )
    if "image" in filters:
        image_hit = _prefix_any(filters["image"], attrs.get("image"))
        if event.type == "image":
            image_hit = image_hit or _prefix_any(
                filters["image"], event.actor_id, attrs.get("name")
            )
        checks.append(("image", image_hit))
    return all(ok for name, ok in checks if name in filters)


_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}  # fmt: skip


def parse_timestamp(value: str, *, now_ns: int | None = None) -> int:
    """A ``since``/``until`` argument as nanoseconds since the epoch.

    Accepted as Docker does: Unix seconds with an optional fraction (``1700000000.5``),
    RFC 3339 / ISO dates (``2024-01-02T03:04:05Z``), and Go durations counted back from now
    (``10m``, ``1h30m``).
    """
    now = time.time_ns() if now_ns is None else now_ns
    text = value.strip()
    if _DURATION_RE.match(text):
        total = sum(float(n) * _UNIT_NS[u] for n, u in _DURATION_PART_RE.findall(text))
        return now - int(total)
    if re.fullmatch(r"-?\d+(\.\d{1,9})?", text):
        secs, _, frac = text.partition(".")
        return int(secs) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid time value {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # Docker reads zone-less times as local time
    return int(parsed.timestamp() * 1_000_000_000)


async def stream_events(
    bus: EventBus,
    filters: Mapping[str, list[str]],
    since_ns: int | None,
    until_ns: int | None,
) -> AsyncIterator[Event]:
    """Past events from ``since`` (if given), then live ones until ``until`` (if given)."""
    async with bus.subscribe() as sub:
        # Subscribing and taking the history happen without an await in between, so no event
        # is lost or sent twice.
        if since_ns is not None or until_ns is not None:
            # As in Docker: either bound replays the history (until alone: all of it up to then).
            for event in bus.history():
                if event.time_nano < (since_ns or 0):
                    continue
                if until_ns is not None and event.time_nano > until_ns:
                    return
                if event_matches(event, filters):
                    yield event
        while not sub.overflowed:
            timeout = None
            if until_ns is not None:
                timeout = (until_ns - time.time_ns()) / 1e9
                if timeout <= 0:
                    return
            try:
                event = await asyncio.wait_for(sub.get(), timeout)
            except TimeoutError:
                return
            if until_ns is not None and event.time_nano > until_ns:
                return
            if event_matches(event, filters):
                yield event
