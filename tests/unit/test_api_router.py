"""Routing, query and body helpers, filters and the known-fields check of the API router."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pycompose.engine.api.router import (
    ZERO,
    HTTPError,
    Request,
    Response,
    Router,
    check_fields,
    compile_pattern,
    is_zero,
    json_response,
    parse_filters,
)
from pycompose.engine.errors import InvalidArgument


async def _handler(req: Request) -> Response:
    return Response()


async def _other(req: Request) -> Response:
    return Response(status=201)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read_all(self, limit: int) -> bytes:
        if len(self.data) > limit:
            raise HTTPError(413, "too large")
        return self.data


def _request(
    query: dict[str, list[str]] | None = None, body: bytes = b"", **headers: str
) -> Request:
    return Request(
        method="POST",
        path="/x",
        query=query or {},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        body=_Body(body),  # type: ignore[arg-type]
        api_version="1.47",
    )


def test_pattern_parameters_and_slashes() -> None:
    m = compile_pattern("/containers/{id}/json").match("/containers/abc/json")
    assert m is not None and m.groupdict() == {"id": "abc"}
    assert compile_pattern("/containers/{id}/json").match("/containers/a/b/json") is None
    m = compile_pattern("/images/{name:path}/json").match(
        "/images/docker.io/library/busybox:1/json"
    )
    assert m is not None and m.group("name") == "docker.io/library/busybox:1"
    with pytest.raises(ValueError, match="must start"):
        compile_pattern("containers")


def test_resolve_method_path_and_head_fallback() -> None:
    router = Router()
    router.add("GET", "/containers/{id}/json", _handler)
    router.add("post", "/containers/{id}/start", _other)

    async def run() -> None:
        handler, params = await router.resolve("GET", "/containers/c1/json")
        assert handler is _handler and params == {"id": "c1"}
        handler, _ = await router.resolve("HEAD", "/containers/c1/json")
        assert handler is _handler
        handler, _ = await router.resolve("POST", "/containers/c1/start")
        assert handler is _other
        with pytest.raises(HTTPError) as err:
            await router.resolve("DELETE", "/containers/c1/json")
        assert err.value.status == 405
        with pytest.raises(HTTPError) as err:
            await router.resolve("GET", "/nope")
        assert err.value.status == 404 and str(err.value) == "page not found"

    asyncio.run(run())


def test_duplicate_route_is_refused() -> None:
    router = Router()
    router.add("GET", "/a", _handler)
    with pytest.raises(ValueError, match="already registered"):
        router.add("GET", "/a", _other)


def test_unknown_route_waits_until_components_are_ready() -> None:
    router = Router()

    async def run() -> None:
        ready = asyncio.Event()
        router.hold_until_ready(ready)
        pending = asyncio.ensure_future(router.resolve("GET", "/late"))
        await asyncio.sleep(0.01)
        assert not pending.done()
        router.add("GET", "/late", _other)
        ready.set()
        handler, _ = await pending
        assert handler is _other
        with pytest.raises(HTTPError):  # after ready, a miss answers at once
            await router.resolve("GET", "/still-missing")

    asyncio.run(run())


def test_query_helpers_read_like_docker() -> None:
    req = _request({"all": ["1"], "size": ["false"], "n": ["12"], "bad": ["x"], "e": [""]})
    assert req.query_bool("all") is True
    assert req.query_bool("size") is False
    assert req.query_bool("e") is False
    assert req.query_bool("absent", default=True) is True
    assert req.query_int("n") == 12
    assert req.query_int("absent", 3) == 3
    with pytest.raises(InvalidArgument, match="'bad'"):
        req.query_int("bad")


def test_json_body_errors_name_the_problem() -> None:
    async def run() -> None:
        assert await _request(body=b'{"A": 1}').json() == {"A": 1}
        assert await _request(body=b"  ").json() is None
        with pytest.raises(InvalidArgument, match="malformed JSON in request body: Expecting"):
            await _request(body=b'{"A": ').json()
        with pytest.raises(InvalidArgument, match="must be a JSON object, got list"):
            await _request(body=b"[1]").json_object()
        with pytest.raises(InvalidArgument, match="must not be empty"):
            await _request(body=b"").json_object()
        assert await _request(body=b"").json_object(required=False) == {}
        with pytest.raises(InvalidArgument, match="Content-Type"):
            await _request(body=b"{}", content_type="text/plain").json()
        with pytest.raises(HTTPError):
            await _request(body=b"[" * 20).json(limit=10)

    asyncio.run(run())


def test_filters_both_encodings_and_unknown_names() -> None:
    assert parse_filters('{"label": {"a=b": true, "c": false}}') == {"label": ["a=b"]}
    assert parse_filters('{"status": ["running", "exited"]}') == {"status": ["running", "exited"]}
    assert parse_filters(None) == {} and parse_filters("") == {}
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        parse_filters('{"colour": ["red"]}', known={"label"})
    with pytest.raises(InvalidArgument, match="invalid filters"):
        parse_filters("{nope")
    with pytest.raises(InvalidArgument, match="list or an object"):
        parse_filters('{"label": 3}')


def test_is_zero() -> None:
    value: Any
    for value in (None, False, 0, 0.0, "", [], {}):
        assert is_zero(value), value
    for value in (True, 1, "x", [0], {"a": 1}, -1):
        assert not is_zero(value), value


def test_check_fields_unknown_unsupported_and_defaults() -> None:
    known = {"Image", "Cmd"}
    unsupported: dict[str, Any] = {"Privileged": ZERO, "NetworkMode": "default"}
    check_fields({"Image": "x", "Privileged": False, "NetworkMode": ""}, where="", known=known,
                 unsupported=unsupported)  # fmt: skip
    check_fields(
        {"NetworkMode": "default"}, where="HostConfig", known=known, unsupported=unsupported
    )
    with pytest.raises(InvalidArgument, match=r"^unknown field HostConfig\.Colour$"):
        check_fields({"Colour": 1}, where="HostConfig", known=known, unsupported=unsupported)
    with pytest.raises(
        InvalidArgument, match=r"HostConfig\.Privileged is not supported \(got true\)"
    ):
        check_fields({"Privileged": True}, where="HostConfig", known=known, unsupported=unsupported)
    with pytest.raises(InvalidArgument, match=r"^NetworkMode is not supported \(got \"bridge\"\)"):
        check_fields({"NetworkMode": "bridge"}, where="", known=known, unsupported=unsupported)


def test_json_response_shape() -> None:
    resp = json_response({"message": "x"}, status=404)
    assert resp.status == 404
    assert resp.body == b'{"message":"x"}\n'
    assert resp.content_type == "application/json"
