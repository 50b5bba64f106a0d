"""Requests, responses and routes: what an API handler sees and returns.

A handler is ``async def handler(req: Request) -> AnyResponse``. It reads path parameters from
``req.params``, the query through the ``query_*`` helpers and the body through ``req.json()``
or ``req.body``; it raises :class:`~pycompose.engine.errors.EngineError` subclasses for errors,
which the server turns into Docker's ``{"message": ...}`` bodies with the error's status.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from pycompose.engine.errors import EngineError, InvalidArgument

if TYPE_CHECKING:
    from pycompose.engine.api.server import BodyReader
    from pycompose.engine.api.streams import RawStream

MAX_JSON_BODY = 4 * 1024 * 1024
"""Largest JSON request body accepted, in bytes (create requests are a few KiB)."""

JSON_TYPE = "application/json"


class HTTPError(EngineError):
    """An error with an explicit status code, for protocol-level failures (405, 413, 431...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """One parsed API request; ``path`` has the ``/vX.YY`` prefix removed."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: BodyReader
    api_version: str
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header by case-insensitive name (repeated headers are comma-joined)."""
        return self.headers.get(name.lower(), default)

    def query_str(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter, or ``default`` when absent."""
        values = self.query.get(name)
        return values[-1] if values else default

    def query_bool(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter, read as Docker does: "", 0, no, false and none are false."""
        value = self.query_str(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "no", "false", "none")

    def query_int(self, name: str, default: int | None = None) -> int | None:
        """An integer query parameter; anything not an integer is a 400 naming the parameter."""
        value = self.query_str(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(
                f"invalid value for query parameter {name!r}: {value!r}"
            ) from None

    def filters(self, known: Collection[str] | None = None) -> dict[str, list[str]]:
        """The ``filters`` query parameter parsed, checked against ``known`` filter names."""
        return parse_filters(self.query_str("filters"), known)

    async def json(self, *, limit: int = MAX_JSON_BODY) -> Any:
        """The body parsed as JSON (``None`` if empty); malformed JSON is a 400 saying why."""
        ctype = self.header("content-type")
        if ctype is not None:
            base = ctype.split(";", 1)[0].strip().lower()
            if base not in (JSON_TYPE, "") and not base.endswith("+json"):
                # Docker says the same: a body must be JSON when a type is declared at all.
                raise InvalidArgument(
                    f"unsupported Content-Type header ({ctype}): must be '{JSON_TYPE}'"
                )
        data = await self.body.read_all(limit)
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InvalidArgument(f"malformed JSON in request body: {err}") from err

    async def json_object(
        self, *, limit: int = MAX_JSON_BODY, required: bool = True
    ) -> dict[str, Any]:
        """The body as a JSON object; an empty body is ``{}`` unless ``required``."""
        obj = await self.json(limit=limit)
        if obj is None:
            if required:
                raise InvalidArgument("request body must not be empty: expected a JSON object")
            return {}
        if not isinstance(obj, dict):
            raise InvalidArgument(f"request body must be a JSON object, got {type(obj).__name__}")
        return obj


@dataclass
class Response:
    """A complete response; ``body`` is sent with a Content-Length."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """A response whose body is produced while it is sent (chunked), flushed chunk by chunk.

    The iterator is closed (``aclose``) when the client goes away, so generators can clean up
    in ``finally``.
    """

    chunks: AsyncIterator[bytes]
    content_type: str = JSON_TYPE
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HijackResponse:
    """Take over the connection (attach, exec start): after the 101 (or 200) head, ``run`` owns
    the raw byte stream in both directions; the connection is closed when it returns."""

    run: Callable[[RawStream], Awaitable[None]]
    content_type: str = "application/vnd.docker.raw-stream"
    headers: dict[str, str] = field(default_factory=dict)


AnyResponse: TypeAlias = Response | StreamResponse | HijackResponse
Handler: TypeAlias = Callable[[Request], Awaitable[AnyResponse]]


def json_response(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON body the way Docker writes it: compact, newline-terminated."""
    body = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    return Response(status=status, body=body, content_type=JSON_TYPE, headers=dict(headers or {}))


def error_response(status: int, message: str) -> Response:
    """Docker's error shape: ``{"message": "..."}``."""
    return json_response({"message": message}, status=status)


def empty_response(status: int = 204) -> Response:
    """No body (204 for start/stop/kill, 201 without content, ...)."""
    return Response(status=status)


_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Turn ``/containers/{id}/json`` into a regex; ``{name:path}`` may contain slashes."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    out, pos = "", 0
    for m in _PARAM_RE.finditer(pattern):
        out += re.escape(pattern[pos : m.start()])
        out += f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"
        pos = m.end()
    out += re.escape(pattern[pos:])
    return re.compile(f"^{out}$")


@dataclass(frozen=True)
class Route:
    """One method + path pattern and its handler."""

    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


class Router:
    """Routes by method and path; patterns are tried in the order they were added.

    ``hold_until_ready`` makes a request for an unknown path wait until the engine's
    components have registered their routes (they load after the socket already answers
    ``/_ping``), instead of failing with 404 during start-up.
    """

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._ready: asyncio.Event | None = None

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` (GET, POST, ...) on ``pattern``."""
        method = method.upper()
        for route in self._routes:
            if route.method == method and route.pattern == pattern:
                raise ValueError(f"route {method} {pattern} is already registered")
        self._routes.append(Route(method, pattern, compile_pattern(pattern), handler))

    def routes(self) -> list[Route]:
        """All routes, in matching order."""
        return list(self._routes)

    def hold_until_ready(self, ready: asyncio.Event) -> None:
        """Make unmatched requests wait for ``ready`` before answering 404/405."""
        self._ready = ready

    async def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters for a request; 404 or 405 if there is none."""
        try:
            return self._match(method, path)
        except HTTPError:
            if self._ready is None or self._ready.is_set():
                raise
        await self._ready.wait()
        return self._match(method, path)

    def _match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        path_matched = False
        for want in (method, "GET") if method == "HEAD" else (method,):
            for route in self._routes:
                m = route.regex.match(path)
                if m is None:
                    continue
                path_matched = True
                if route.method == want:
                    return route.handler, m.groupdict()
        if path_matched:
            raise HTTPError(405, f"method {method} is not allowed on {path}")
        raise HTTPError(404, "page not found")


def parse_filters(raw: str | None, known: Collection[str] | None = None) -> dict[str, list[str]]:
    """Parse Docker's ``filters`` parameter into ``{name: [values]}``.

    Both encodings clients send are read: ``{"label": {"a=b": true}}`` (current) and
    ``{"label": ["a=b"]}`` (old). A filter name outside ``known`` is a 400, as in Docker.
    """
    if raw is None or raw.strip() == "":
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InvalidArgument(f"invalid filters: {err}") from err
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for name, values in data.items():
        if known is not None and name not in known:
            raise InvalidArgument(f"invalid filter '{name}'")
        if isinstance(values, dict):
            out[name] = [str(k) for k, v in values.items() if v]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            out[name] = list(values)
        else:
            raise InvalidArgument(f"invalid filter '{name}': values must be a list or an object")
    return out


class _Zero:
    def __repr__(self) -> str:
        return "ZERO"


ZERO: Any = _Zero()
"""Marker for :func:`check_fields`: only a zero value (None, "", 0, false, [], {}) is accepted."""


def is_zero(value: Any) -> bool:
    """True for the values real clients send for a field they do not use."""
    if value is None or value is False:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str | list | dict):
        return len(value) == 0
    return False


def check_fields(
    obj: Mapping[str, Any],
    *,
    where: str,
    known: Collection[str],
    unsupported: Mapping[str, Any] | None = None,
) -> None:
    """Refuse fields we do not know, and set values of fields we cannot honour.

    ``known`` lists the fields that are handled. ``unsupported`` maps fields that real clients
    send but we do not implement to the one non-zero value that still means "default" (or
    :data:`ZERO` when only zero values are acceptable). ``where`` prefixes field names in
    messages (``"HostConfig"`` gives ``HostConfig.Privileged``).
    """
    unsupported = unsupported or {}
    prefix = f"{where}." if where else ""
    for name, value in obj.items():
        if name in known:
            continue
        if name in unsupported:
            default = unsupported[name]
            if is_zero(value) or (default is not ZERO and value == default):
                continue
            raise InvalidArgument(
                f"{prefix}{name} is not supported (got {json.dumps(value)}); "
                "leave it unset or at its default"
            )
        raise InvalidArgument(f"unknown field {prefix}{name}")


async def iterate_json_lines(items: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """Encode each item as one JSON line (Docker's streamed JSON format)."""
    async for item in items:
        yield json.dumps(item, separators=(",", ":")).encode() + b"\n"
