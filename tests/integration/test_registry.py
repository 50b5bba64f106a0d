"""The registry client against a real docker-registry and against a registry we control."""

from __future__ import annotations

import hashlib
import json
import pathlib
import socket
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

import anyio
import pytest

from pycompose.engine.errors import InvalidArgument, NotFound
from pycompose.engine.images import manifest as mf
from pycompose.engine.images.auth import AuthStore, login
from pycompose.engine.images.content import ContentStore
from pycompose.engine.images.pull import open_for_pull
from pycompose.engine.images.reference import parse_reference
from pycompose.engine.images.registry import (
    Credentials,
    RegistryClient,
    RegistryConfig,
    RegistryError,
    RegistryUnauthorized,
    parse_challenge,
)
from tests.fixtures import registry as fx

plain_registry = fx.plain_registry
tls_registry = fx.tls_registry
fake_registry = fx.fake_registry

T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def content(tmp_path: pathlib.Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


@pytest.fixture
def layout(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "layout"
    path.mkdir()
    fx.build_oci_layout(path, fx.busybox_layers())
    return path


def layer_desc(data: bytes, **extra: Any) -> mf.Descriptor:
    return mf.Descriptor(mf.OCI_LAYER_GZIP, digest_of(data), len(data), **extra)


# -- the real registry ---------------------------------------------------------------------

def test_fetch_manifest_and_blobs_from_plain_registry(
        plain_registry: fx.RegistryServer, layout: pathlib.Path, content: ContentStore) -> None:
    fx.skopeo_copy(layout, plain_registry, "library/busybox")
    ref = parse_reference(f"{plain_registry.host}/library/busybox")
    seen: list[int] = []

    async def main() -> mf.Manifest:
        async with RegistryClient(plain_registry.client_config()) as client:
            repo = await client.repository(ref)
            assert repo.endpoint.url == plain_registry.url  # https failed, http used
            raw = await repo.get_manifest("latest")
            doc = mf.parse_manifest(raw.data, raw.media_type)
            for desc in (doc.config, *doc.layers):
                await repo.fetch_blob(desc, content, seen.append)
            assert await repo.head_manifest("latest") == raw.digest
            assert await repo.head_manifest("nope") is None
            return doc

    doc = run(main)
    for desc in (doc.config, *doc.layers):
        assert content.has(desc.digest)
        assert content.size(desc.digest) == desc.size
    assert seen[-1] == doc.layers[-1].size


def test_unknown_tag_is_not_found(plain_registry: fx.RegistryServer) -> None:
    async def main() -> None:
        async with RegistryClient(plain_registry.client_config()) as client:
            repo = await client.repository(parse_reference(f"{plain_registry.host}/nothing"))
            await repo.get_manifest("latest")

    with pytest.raises(NotFound, match=r"MANIFEST_UNKNOWN|NAME_UNKNOWN"):
        run(main)


def test_basic_auth_over_verified_tls(tls_registry: fx.RegistryServer, layout: pathlib.Path,
                                      content: ContentStore) -> None:
    fx.skopeo_copy(layout, tls_registry, "team/app", "v1")
    ref = parse_reference(f"{tls_registry.host}/team/app:v1")

    async def fetch(config: RegistryConfig) -> str:
        async with RegistryClient(config) as client:
            repo = await client.repository(ref)
            assert repo.endpoint.url.startswith("https://")
            raw = await repo.get_manifest(ref.object)
            doc = mf.parse_manifest(raw.data, raw.media_type)
            await repo.fetch_blob(doc.config, content)
            return raw.digest

    assert run(lambda: fetch(tls_registry.client_config())).startswith("sha256:")
    with pytest.raises(RegistryUnauthorized):
        run(lambda: fetch(tls_registry.client_config(credentials=None)))
    wrong = Credentials(fx.USERNAME, "wrong")
    with pytest.raises(RegistryUnauthorized):
        run(lambda: fetch(tls_registry.client_config(credentials=lambda _h: wrong)))
    # Without the CA and not configured insecure, the self-signed certificate is refused.
    with pytest.raises(RegistryError, match="CERTIFICATE_VERIFY_FAILED"):
        run(lambda: fetch(tls_registry.client_config(certs_dirs=())))


def test_check_login_against_htpasswd(tls_registry: fx.RegistryServer) -> None:
    async def login(creds: Credentials) -> None:
        async with RegistryClient(tls_registry.client_config()) as client:
            await client.check_login(tls_registry.host, creds)

    run(lambda: login(Credentials(fx.USERNAME, fx.PASSWORD)))
    with pytest.raises(RegistryUnauthorized, match="refused"):
        run(lambda: login(Credentials(fx.USERNAME, "nope")))


def test_login_saves_credentials_that_pulls_then_use(
        tls_registry: fx.RegistryServer, layout: pathlib.Path, tmp_path: pathlib.Path) -> None:
    fx.skopeo_copy(layout, tls_registry, "private/x")
    store = AuthStore(tmp_path / "cfg", tmp_path / "docker" / "config.json")
    config = tls_registry.client_config(credentials=store.lookup)

    async def manifest() -> str:
        async with RegistryClient(config) as client:
            repo = await client.repository(parse_reference(f"{tls_registry.host}/private/x"))
            return (await repo.get_manifest("latest")).digest

    with pytest.raises(RegistryUnauthorized):
        run(manifest)
    with pytest.raises(RegistryUnauthorized):
        run(lambda: login(tls_registry.host, fx.USERNAME, "bad", store=store,
                          registry_config=config))
    assert not store.path.exists()
    run(lambda: login(tls_registry.host, fx.USERNAME, fx.PASSWORD, store=store,
                      registry_config=config))
    assert run(manifest).startswith("sha256:")


# -- a registry we control: authentication and endpoints -------------------------------------

def test_bearer_token_anonymous_and_with_credentials() -> None:
    data = b'{"schemaVersion": 2}'
    for creds in (None, Credentials("bob", "pw")):
        fake = fx.FakeRegistry(token_auth=True, credentials=creds)
        try:
            fake.add_manifest("lib/x", "latest", data, mf.OCI_MANIFEST)
            config = RegistryConfig(credentials=lambda _h, c=creds: c)  # type: ignore[misc]

            async def main(fake: fx.FakeRegistry = fake, config: RegistryConfig = config) -> bytes:
                async with RegistryClient(config) as client:
                    repo = await client.repository(parse_reference(f"{fake.host}/lib/x"))
                    return (await repo.get_manifest("latest")).data

            assert run(main) == data
            assert fake.issued == [{"service": ["fake"], "scope": ["repository:lib/x:pull"]}]
            token_req = next(r for r in fake.requests if r.path.startswith("/token"))
            assert ("authorization" in token_req.headers) == (creds is not None)
        finally:
            fake.close()


def test_bearer_token_refused_for_wrong_credentials() -> None:
    fake = fx.FakeRegistry(token_auth=True, credentials=Credentials("bob", "pw"))
    try:
        config = RegistryConfig(credentials=lambda _h: Credentials("bob", "bad"))

        async def main() -> None:
            async with RegistryClient(config) as client:
                repo = await client.repository(parse_reference(f"{fake.host}/lib/x"))
                await repo.get_manifest("latest")

        with pytest.raises(RegistryUnauthorized, match="refused the credentials"):
            run(main)
    finally:
        fake.close()


def test_plain_http_only_for_insecure_hosts(fake_registry: fx.FakeRegistry) -> None:
    async def main() -> None:
        async with RegistryClient(RegistryConfig(insecure_registries=())) as client:
            await client.repository(parse_reference(f"{fake_registry.host}/x"))

    with pytest.raises(RegistryError, match="cannot reach registry https://"):
        run(main)
    assert not fake_registry.requests or all(r.method != "GET" or r.path != "/v2/"
                                             for r in fake_registry.requests)


def test_insecure_listing_by_host_and_port() -> None:
    client = RegistryClient(RegistryConfig(insecure_registries=("reg.local:5000", "10.0.0.0/8")))
    assert [e.url for e in client.candidates("reg.local:5000")] == [
        "https://reg.local:5000", "http://reg.local:5000"]
    assert [e.url for e in client.candidates("reg.local")] == ["https://reg.local"]
    assert [e.verify for e in client.candidates("10.1.2.3:5000")] == [False, False]
    assert [e.url for e in client.candidates("docker.io")] == ["https://registry-1.docker.io"]
    default = RegistryClient()
    assert len(default.candidates("127.0.0.5:1")) == 2
    assert len(default.candidates("localhost:5000")) == 2
    with pytest.raises(InvalidArgument, match="plain http"):
        RegistryClient(RegistryConfig(mirrors=("http://mirror.example",))).mirror_endpoints()


def test_docker_hub_pulls_try_mirrors_in_order() -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST}).encode()
    empty, full = fx.FakeRegistry(), fx.FakeRegistry()
    try:
        full.add_manifest("library/busybox", "1.36", data, mf.OCI_MANIFEST)
        config = RegistryConfig(mirrors=(empty.url, full.url + "/"))

        async def main() -> tuple[str, bytes]:
            async with RegistryClient(config) as client:
                repo, raw = await open_for_pull(client, parse_reference("busybox:1.36"))
                return repo.endpoint.url, raw.data

        assert run(main) == (full.url, data)
        assert any(r.path == "/v2/library/busybox/manifests/1.36" for r in empty.requests)
    finally:
        empty.close()
        full.close()


def test_parse_challenge() -> None:
    c = parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                        'scope="repository:a/b:pull,push"')
    assert c is not None and c.scheme == "bearer"
    assert dict(c.params) == {"realm": "https://auth.example/token", "service": "reg",
                              "scope": "repository:a/b:pull,push"}
    basic = parse_challenge('Basic realm="x y"')
    assert basic is not None and basic.scheme == "basic" and basic.params["realm"] == "x y"
    assert parse_challenge("") is None


# -- a registry we control: malicious content ------------------------------------------------

def fetch(fake: fx.FakeRegistry, content: ContentStore, desc: mf.Descriptor,
          seen: list[int] | None = None) -> str:
    async def main() -> str:
        async with RegistryClient() as client:
            repo = await client.repository(parse_reference(f"{fake.host}/x"))
            return await repo.fetch_blob(desc, content, None if seen is None else seen.append)
    return run(main)


def test_blob_with_wrong_digest_is_refused(fake_registry: fx.FakeRegistry,
                                           content: ContentStore) -> None:
    claimed = layer_desc(b"the real layer")
    fake_registry.add_blob("x", claimed.digest, b"something else")
    with pytest.raises(InvalidArgument, match="mismatch"):
        fetch(fake_registry, content, claimed)
    assert not content.has(claimed.digest)
    assert list((content.root / "ingest").iterdir()) == []


def test_blob_longer_than_declared_is_refused(fake_registry: fx.FakeRegistry,
                                              content: ContentStore) -> None:
    desc = layer_desc(b"12345")
    fake_registry.add_blob("x", desc.digest, b"12345" * 1000)
    with pytest.raises(InvalidArgument, match="larger"):
        fetch(fake_registry, content, desc)
    assert not content.has(desc.digest)


def test_malformed_digest_is_refused_before_any_request(fake_registry: fx.FakeRegistry,
                                                        content: ContentStore) -> None:
    bad = mf.Descriptor(mf.OCI_LAYER_GZIP, "sha256:../../x", 3)
    with pytest.raises(InvalidArgument, match="invalid digest"):
        fetch(fake_registry, content, bad)
    assert not any(".." in r.path for r in fake_registry.requests)
    doc = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
           "config": {"mediaType": mf.OCI_CONFIG, "digest": "sha256:../../x", "size": 2},
           "layers": []}
    with pytest.raises(InvalidArgument, match="invalid digest"):
        mf.parse(json.dumps(doc).encode(), mf.OCI_MANIFEST)


def test_foreign_layer_urls_are_refused(fake_registry: fx.FakeRegistry,
                                        content: ContentStore) -> None:
    data = b"foreign"
    url = f"{fake_registry.url}/elsewhere/layer.tar.gz"
    with pytest.raises(InvalidArgument, match="foreign layer"):
        fetch(fake_registry, content, layer_desc(data, urls=(url,)))
    foreign_type = mf.Descriptor(mf.DOCKER_LAYER_FOREIGN, digest_of(data), len(data))
    with pytest.raises(InvalidArgument, match="foreign layer"):
        fetch(fake_registry, content, foreign_type)
    assert not any("elsewhere" in r.path or "/blobs/" in r.path for r in fake_registry.requests)


def test_interrupted_blob_download_resumes_with_range(fake_registry: fx.FakeRegistry,
                                                      content: ContentStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    desc = layer_desc(data)
    fake_registry.add_blob("x", desc.digest, data, cut_after=[300_000])
    with pytest.raises(RegistryError, match="download interrupted"):
        fetch(fake_registry, content, desc)
    assert not content.has(desc.digest)
    seen: list[int] = []
    assert fetch(fake_registry, content, desc, seen) == desc.digest
    assert content.has(desc.digest) and content.size(desc.digest) == len(data)
    blob_requests = [r for r in fake_registry.requests if "/blobs/" in r.path]
    assert "range" not in blob_requests[0].headers
    assert blob_requests[1].headers["range"] == "bytes=300000-"
    assert seen[0] > 300_000 and seen[-1] == len(data)


def test_resume_when_server_ignores_range(fake_registry: fx.FakeRegistry,
                                          content: ContentStore) -> None:
    data = b"abcdefgh" * 50_000
    desc = layer_desc(data)
    fake_registry.add_blob("x", desc.digest, data, ranges=False, cut_after=[100_000])
    with pytest.raises(RegistryError):
        fetch(fake_registry, content, desc)
    assert fetch(fake_registry, content, desc) == desc.digest
    assert content.path(desc.digest).read_bytes() == data


def test_redirect_to_other_origin_drops_authorization(content: ContentStore) -> None:
    registry, storage = fx.FakeRegistry(token_auth=True), fx.FakeRegistry()
    try:
        data = b"layer bytes" * 100
        desc = layer_desc(data)
        storage.add_blob("x", desc.digest, data)
        location = f"{storage.url}/v2/x/blobs/{desc.digest}"

        def redirect(req: BaseHTTPRequestHandler) -> None:
            fx.send(req, 307, b"", {"Location": location})

        registry.routes[("GET", f"/v2/x/blobs/{desc.digest}")] = redirect
        assert fetch(registry, content, desc) == desc.digest
        hop = next(r for r in storage.requests if "/blobs/" in r.path)
        assert "authorization" not in hop.headers
    finally:
        registry.close()
        storage.close()


def test_fifty_megabyte_manifest_is_refused_without_reading_it(
        fake_registry: fx.FakeRegistry) -> None:
    sent = {"bytes": 0}

    def huge(req: BaseHTTPRequestHandler, declare: bool) -> None:
        total = 50 * 1024 * 1024
        headers = {"Content-Type": mf.OCI_MANIFEST}
        if declare:
            headers["Content-Length"] = str(total)
        else:
            headers["Connection"] = "close"
        fx.send_head(req, 200, headers)
        block = b" " * 65536
        try:
            while sent["bytes"] < total:
                req.wfile.write(block)
                sent["bytes"] += len(block)
        except OSError:
            pass  # the client hung up, as it should
        req.close_connection = True

    fake_registry.routes[("GET", "/v2/x/manifests/declared")] = lambda r: huge(r, True)
    fake_registry.routes[("GET", "/v2/x/manifests/streamed")] = lambda r: huge(r, False)

    async def get(tag: str) -> None:
        async with RegistryClient() as client:
            repo = await client.repository(parse_reference(f"{fake_registry.host}/x"))
            await repo.get_manifest(tag)

    with pytest.raises(InvalidArgument, match="52428800 bytes, more than"):
        run(lambda: get("declared"))
    sent["bytes"] = 0
    with pytest.raises(InvalidArgument, match="larger than the 4194304 bytes"):
        run(lambda: get("streamed"))
    assert sent["bytes"] < 20 * 1024 * 1024


def test_manifest_digest_checked(fake_registry: fx.FakeRegistry) -> None:
    data = b'{"schemaVersion": 2}'
    other = "sha256:" + "0" * 64
    fake_registry.add_manifest("x", "lying", data, mf.OCI_MANIFEST, digest_header=other)
    fake_registry.add_manifest("x", other, data, mf.OCI_MANIFEST)

    async def get(obj: str) -> None:
        async with RegistryClient() as client:
            repo = await client.repository(parse_reference(f"{fake_registry.host}/x"))
            await repo.get_manifest(obj)

    with pytest.raises(InvalidArgument, match="registry says"):
        run(lambda: get("lying"))
    with pytest.raises(InvalidArgument, match="asked for"):
        run(lambda: get(other))


def test_manifest_that_is_also_an_index_is_refused(fake_registry: fx.FakeRegistry) -> None:
    cfg = {"mediaType": mf.OCI_CONFIG, "digest": digest_of(b"{}"), "size": 2}
    doc = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "config": cfg, "layers": [],
           "manifests": [{"mediaType": mf.OCI_MANIFEST, "digest": digest_of(b"x"), "size": 1}]}
    fake_registry.add_manifest("x", "both", json.dumps(doc).encode(), mf.OCI_MANIFEST)

    async def get() -> None:
        async with RegistryClient() as client:
            repo = await client.repository(parse_reference(f"{fake_registry.host}/x"))
            raw = await repo.get_manifest("both")
            mf.parse(raw.data, raw.media_type)

    with pytest.raises(InvalidArgument, match="ambiguous"):
        run(get)


def test_unreachable_registry_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused

        async def main() -> None:
            async with RegistryClient() as client:
                await client.repository(parse_reference(f"127.0.0.1:{port}/x"))

        with pytest.raises(RegistryError, match="cannot reach registry"):
            run(main)
