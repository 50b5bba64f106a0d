"""Client for the Docker Registry HTTP API v2 (the distribution spec).

:class:`RegistryClient` owns the HTTP connections and the authentication state; it hands out
:class:`Repository` objects bound to one endpoint and one repository, which fetch and push
manifests and blobs. Authentication follows the registry's ``WWW-Authenticate`` challenge:
``Bearer`` (a token from the realm, anonymous or with basic credentials, scoped per repository)
or ``Basic``. Which scheme to speak is decided per host: https with verified TLS, except for
hosts configured insecure (and loopback, as docker does), where unverified https is tried and
then plain http. Extra CA roots and client certificates come per host from ``certs.d``
directories (see :mod:`pycompose.engine.images.certsd`), for registries, mirrors and token
services alike. Pulls from Docker Hub try the configured mirrors first.

httpx is imported lazily: this module is imported by code on the CLI's start-up path.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pycompose.engine.config import is_insecure
from pycompose.engine.errors import EngineError, InvalidArgument, NotFound
from pycompose.engine.images.certsd import (
    DEFAULT_CERTS_DIR,
    DOCKER_CERTS_DIR,
    CertsDirs,
    describe,
    ssl_context,
    tls_advice,
)
from pycompose.engine.images.manifest import (
    ACCEPT,
    DOCKER_LAYER_FOREIGN,
    MAX_MANIFEST_SIZE,
    OCI_NONDIST_PREFIX,
    Descriptor,
)
from pycompose.engine.images.reference import DEFAULT_DOMAIN, Reference, validate_digest

if TYPE_CHECKING:
    import ssl

    import anyio
    import httpx

    from pycompose.engine.images.content import ContentStore

ACCEPT_MANIFESTS = ", ".join(ACCEPT)
DOCKER_HUB_API = "registry-1.docker.io"
CHUNK = 256 * 1024


class RegistryError(EngineError):
    """The registry failed, answered something unexpected, or could not be reached."""

    status = 500


class RegistryUnauthorized(RegistryError):
    """The registry refused our credentials (or wants some and we have none)."""

    status = 401


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or identity token) for one registry."""

    username: str
    password: str


CredentialLookup = Callable[[str], "Credentials | None"]


@dataclass(frozen=True)
class RegistryConfig:
    """How to reach registries.

    ``mirrors`` are base URLs (``https://mirror.example``) tried first for Docker Hub pulls.
    ``insecure_registries`` lists hosts (``host`` or ``host:port``) and CIDRs allowed to use
    plain http or unverified TLS; loopback is in the default list, as in docker.
    ``certs_dirs`` are the certs.d roots searched, first match wins, for each host's extra
    CA certificates and client certificate (the engine's own root, then docker's).
    ``credentials`` returns the credentials for a registry host, or None.
    """

    mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ("127.0.0.0/8", "::1/128", "localhost")
    certs_dirs: tuple[Path, ...] = (DEFAULT_CERTS_DIR, DOCKER_CERTS_DIR)
    credentials: CredentialLookup | None = None
    max_manifest_size: int = MAX_MANIFEST_SIZE
    timeout: float = 60.0


@dataclass(frozen=True)
class Endpoint:
    """One base URL speaking the v2 API for a registry ``domain``.

    ``certs_from`` names a host whose certs.d directory serves when this URL's host has
    none: a token service falls back to its registry's (dockerd uses the registry's TLS
    settings for both).
    """

    domain: str
    url: str
    verify: bool
    mirror: bool = False
    certs_from: str = ""

    @property
    def host(self) -> str:
        """The host[:port] of the URL (the key for credentials and for certs.d)."""
        return self.url.split("://", 1)[1].split("/", 1)[0]


@dataclass(frozen=True)
class RawManifest:
    """A manifest or index document exactly as the registry served it."""

    data: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: Mapping[str, str]


class Ingest(Protocol):
    """What we use of ContentStore's ingest objects."""

    offset: int

    def write(self, data: bytes) -> None: ...
    def reset(self) -> None: ...
    def commit(self) -> str: ...


ProgressFn = Callable[[int], None]
# Blob downloads running in this process, by (content root, digest).
_IN_FLIGHT: dict[tuple[str, str], anyio.Lock] = {}

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (or ``Basic realm=...``)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)


def registry_error(resp: httpx.Response, what: str) -> EngineError:
    """Turn a registry error response into our error, quoting the registry's own message."""
    detail = ""
    try:
        body = json.loads(resp.content) if resp.content else None
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            detail = "; ".join(
                f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                for e in errors if isinstance(e, dict))
    except (ValueError, UnicodeDecodeError):
        detail = ""
    detail = detail or resp.reason_phrase or ""
    status = resp.status_code
    message = f"{what}: {status} {detail}".rstrip()
    if status in (401, 403):
        return RegistryUnauthorized(message)
    if status == 404:
        return NotFound(message)
    return RegistryError(message)


def check_descriptor(desc: Descriptor) -> tuple[str, int]:
    """Refuse what we will not download for a descriptor; return its digest and size."""
    validate_digest(desc.digest)
    if desc.size < 0:
        raise InvalidArgument(f"descriptor {desc.digest} has an invalid size {desc.size}")
    if desc.urls or desc.media_type == DOCKER_LAYER_FOREIGN \
            or desc.media_type.startswith(OCI_NONDIST_PREFIX):
        raise InvalidArgument(
            f"layer {desc.digest} is a foreign layer ({desc.media_type}, urls "
            f"{list(desc.urls)}); downloading from outside the registry is not supported")
    return desc.digest, desc.size


class RegistryClient:
    """Connections and authentication for talking to registries; an async context manager."""

    def __init__(self, config: RegistryConfig | None = None,
                 *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config or RegistryConfig()
        self._transport = transport
        self._clients: dict[tuple[str, bool, str], httpx.AsyncClient] = {}
        self._certs = CertsDirs.of(self.config.certs_dirs)
        self._resolved: dict[str, Endpoint] = {}
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str], str] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # -- endpoints -------------------------------------------------------------------------

    def candidates(self, domain: str) -> list[Endpoint]:
        """The URLs to try for ``domain``, most secure first."""
        host = DOCKER_HUB_API if domain == DEFAULT_DOMAIN else domain
        if not is_insecure(host, self.config.insecure_registries):
            return [Endpoint(domain, f"https://{host}", True)]
        return [Endpoint(domain, f"https://{host}", False),
                Endpoint(domain, f"http://{host}", False)]

    def mirror_endpoints(self) -> list[Endpoint]:
        """The configured Docker Hub mirrors, as endpoints."""
        out = []
        for url in self.config.mirrors:
            url = url.rstrip("/")
            if not url.startswith(("http://", "https://")):
                url = f"https://{url}"
            host = url.split("://", 1)[1]
            insecure = is_insecure(host, self.config.insecure_registries)
            if url.startswith("http://") and not insecure:
                raise InvalidArgument(f"mirror {url} uses plain http but {host} is not an "
                                      "insecure registry")
            out.append(Endpoint(DEFAULT_DOMAIN, url, not insecure, mirror=True))
        return out

    def _client(self, ep: Endpoint) -> httpx.AsyncClient:
        """The HTTP client for ``ep``: its host's certs.d files (read now) decide the TLS."""
        import httpx

        key = (ep.url, ep.verify, ep.certs_from)
        client = self._clients.get(key)
        if client is None:
            tls = None
            if ep.url.startswith("https://"):
                tls = self._certs.lookup(ep.host)
                if tls is None and ep.certs_from:
                    tls = self._certs.lookup(ep.certs_from)
            verify: bool | ssl.SSLContext = ep.verify if tls is None \
                else ssl_context(tls, verify=ep.verify)
            client = httpx.AsyncClient(verify=verify, transport=self._transport,
                                       timeout=httpx.Timeout(self.config.timeout, connect=10.0))
            self._clients[key] = client
        return client

    def _failure(self, what: str, ep: Endpoint, err: Exception) -> RegistryError:
        """``what: err``, with what to do when TLS is the cause."""
        advice = tls_advice(err, ep.host, self._certs)
        return RegistryError(f"{what}: {describe(err)}" + (f". {advice}" if advice else ""))

    async def ping(self, ep: Endpoint) -> None:
        """GET /v2/ on ``ep``; any answer but a server error means a registry is there."""
        import ssl

        import httpx

        try:
            resp = await self._client(ep).get(f"{ep.url}/v2/")
        except (httpx.HTTPError, ssl.SSLError) as err:
            raise self._failure(f"cannot reach registry {ep.url}", ep, err) from err
        if resp.status_code == 401:
            challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
            if challenge is not None:
                self._challenges[ep.url] = challenge
        elif resp.status_code >= 300:
            raise registry_error(resp, f"registry {ep.url} did not answer /v2/")

    async def resolve(self, domain: str) -> Endpoint:
        """The first candidate endpoint of ``domain`` that answers (cached)."""
        if domain in self._resolved:
            return self._resolved[domain]
        errors = []
        for ep in self.candidates(domain):
            try:
                await self.ping(ep)
            except RegistryError as err:
                errors.append(str(err))
                continue
            self._resolved[domain] = ep
            return ep
        raise RegistryError("; ".join(errors))

    async def repository(self, ref: Reference, *, push: bool = False) -> Repository:
        """A handle on ``ref``'s repository at its registry (no mirrors)."""
        ep = await self.resolve(ref.domain)
        return Repository(self, ep, ref.path, push=push)

    def pull_repositories(self, ref: Reference) -> list[Callable[[], Awaitable[Repository]]]:
        """Openers for the places to pull ``ref`` from, in order: mirrors, then the registry."""
        openers: list[Callable[[], Awaitable[Repository]]] = []
        if ref.domain == DEFAULT_DOMAIN:
            for ep in self.mirror_endpoints():
                openers.append(self._mirror_opener(ep, ref.path))
        openers.append(lambda: self.repository(ref))
        return openers

    def _mirror_opener(self, ep: Endpoint, path: str) -> Callable[[], Awaitable[Repository]]:
        async def open_mirror() -> Repository:
            await self.ping(ep)
            return Repository(self, ep, path, push=False)
        return open_mirror

    async def check_login(self, domain: str, credentials: Credentials) -> None:
        """Verify ``credentials`` against ``domain``; raises RegistryUnauthorized if refused."""
        ep = await self.resolve(domain)
        challenge = self._challenges.get(ep.url)
        if challenge is None:
            return  # the registry asks for no authentication at all
        header = await self._authorization(ep, (), credentials, force=True)
        resp = await self._client(ep).get(f"{ep.url}/v2/", headers=header)
        if resp.status_code in (401, 403):
            raise registry_error(resp, f"login to {domain} refused")
        if resp.status_code >= 300:
            raise registry_error(resp, f"login to {domain} failed")

    # -- authentication --------------------------------------------------------------------

    def _credentials(self, ep: Endpoint) -> Credentials | None:
        lookup = self.config.credentials
        if lookup is None:
            return None
        return lookup(ep.host if ep.mirror else ep.domain)

    async def _authorization(self, ep: Endpoint, scopes: tuple[str, ...],
                             credentials: Credentials | None = None,
                             *, force: bool = False) -> dict[str, str]:
        """The Authorization header for a request on ``ep`` needing ``scopes``."""
        import base64

        challenge = self._challenges.get(ep.url)
        if challenge is None:
            return {}
        creds = credentials or self._credentials(ep)
        if challenge.scheme == "basic":
            if creds is None:
                return {}
            raw = f"{creds.username}:{creds.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if challenge.scheme != "bearer":
            raise RegistryError(f"registry {ep.url} asks for unsupported authentication "
                                f"scheme {challenge.scheme!r}")
        key = (ep.url, " ".join(scopes))
        if force or key not in self._tokens:
            self._tokens[key] = await self._fetch_token(ep, challenge, scopes, creds)
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    async def _fetch_token(self, ep: Endpoint, challenge: Challenge, scopes: tuple[str, ...],
                           creds: Credentials | None) -> str:
        import ssl

        import httpx

        realm = challenge.params.get("realm")
        if not realm or not realm.startswith(("https://", "http://")):
            raise RegistryError(f"registry {ep.url} sent a bearer challenge without a usable "
                                f"realm: {realm!r}")
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("scope", s) for s in scopes]
        if "service" in challenge.params:
            params.insert(0, ("service", challenge.params["service"]))
        auth = (creds.username, creds.password) if creds else None
        token_ep = Endpoint(ep.domain, realm, ep.verify)
        if token_ep.host != ep.host:
            token_ep = Endpoint(ep.domain, realm,
                                not is_insecure(token_ep.host, self.config.insecure_registries),
                                certs_from=ep.host)
        client = self._client(token_ep)
        try:
            resp = await client.get(realm, params=params, auth=auth)
        except (httpx.HTTPError, ssl.SSLError) as err:
            raise self._failure(f"cannot reach token service {realm}", token_ep, err) from err
        if resp.status_code in (401, 403):
            raise RegistryUnauthorized(f"token service {realm} refused the credentials for "
                                       f"{ep.domain}: {resp.status_code}")
        if resp.status_code != 200:
            raise registry_error(resp, f"token service {realm}")
        try:
            body = resp.json()
        except ValueError as err:
            raise RegistryError(f"token service {realm} answered invalid JSON") from err
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {realm} answered without a token")
        return token

    async def request(self, ep: Endpoint, method: str, url: str, scopes: tuple[str, ...], *,
                      headers: Mapping[str, str] | None = None,
                      body: bytes | Callable[[], AsyncIterator[bytes]] | None = None,
                      stream: bool = False, follow_redirects: bool = False) -> httpx.Response:
        """Send a request, answering one authentication challenge by retrying once."""
        import ssl

        import httpx

        client = self._client(ep)
        for attempt in (0, 1):
            hdrs = {**(headers or {}), **await self._authorization(ep, scopes)}
            content = body() if callable(body) else body
            req = client.build_request(method, url, headers=hdrs, content=content)
            try:
                resp = await client.send(req, stream=stream, follow_redirects=follow_redirects)
            except (httpx.HTTPError, ssl.SSLError) as err:
                raise self._failure(f"{method} {url} failed", ep, err) from err
            if resp.status_code != 401 or attempt == 1:
                return resp
            challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
            await resp.aread()
            if challenge is None:
                return resp
            self._challenges[ep.url] = challenge
            self._tokens.pop((ep.url, " ".join(scopes)), None)
            await resp.aclose()
        raise AssertionError("unreachable")


class Repository:
    """One repository on one endpoint: manifests and blobs."""

    def __init__(self, client: RegistryClient, endpoint: Endpoint, path: str,
                 *, push: bool = False) -> None:
        self.client = client
        self.endpoint = endpoint
        self.path = path
        self.scopes: tuple[str, ...] = (f"repository:{path}:{'pull,push' if push else 'pull'}",)

    @property
    def base(self) -> str:
        """``<endpoint>/v2/<path>``."""
        return f"{self.endpoint.url}/v2/{self.path}"

    def _what(self, kind: str, obj: str) -> str:
        return f"{kind} {self.endpoint.domain}/{self.path}:{obj}" if kind == "manifest" \
            else f"{kind} {obj} of {self.endpoint.domain}/{self.path}"

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.request(self.endpoint, method, url, self.scopes, **kw)

    # -- manifests -------------------------------------------------------------------------

    async def get_manifest(self, obj: str) -> RawManifest:
        """Fetch the manifest or index for a tag or digest, refusing oversized documents."""
        limit = self.client.config.max_manifest_size
        headers = {"Accept": ACCEPT_MANIFESTS, "Accept-Encoding": "identity"}
        resp = await self._request("GET", f"{self.base}/manifests/{obj}", headers=headers,
                                   stream=True)
        try:
            if resp.status_code != 200:
                await resp.aread()
                raise registry_error(resp, self._what("manifest", obj))
            length = resp.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise InvalidArgument(f"manifest {obj} is {length} bytes, more than the "
                                      f"{limit} bytes allowed")
            data = await _read_limited(resp, limit, f"manifest {obj}")
        finally:
            await resp.aclose()
        media_type = resp.headers.get("content-type", "").split(";", 1)[0].strip()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._check_manifest_digest(obj, digest, resp.headers.get("docker-content-digest"))
        return RawManifest(bytes(data), media_type, digest)

    @staticmethod
    def _check_manifest_digest(obj: str, actual: str, header: str | None) -> None:
        if obj.startswith("sha256:") and actual != obj:
            raise InvalidArgument(f"manifest digest mismatch: asked for {obj}, got {actual}")
        if header and header.startswith("sha256:") and header != actual:
            raise InvalidArgument(f"manifest digest mismatch: registry says {header}, content "
                                  f"is {actual}")

    async def head_manifest(self, obj: str) -> str | None:
        """The digest of the manifest ``obj`` points at ("" if the registry does not say),
        or None if it does not exist."""
        resp = await self._request("HEAD", f"{self.base}/manifests/{obj}",
                                   headers={"Accept": ACCEPT_MANIFESTS})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise registry_error(resp, self._what("manifest", obj))
        digest: str = resp.headers.get("docker-content-digest", "")
        return digest

    async def put_manifest(self, obj: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under a tag or its digest; return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = await self._request("PUT", f"{self.base}/manifests/{obj}", body=data,
                                   headers={"Content-Type": media_type})
        await resp.aread()
        if resp.status_code not in (200, 201):
            raise registry_error(resp, f"pushing {self._what('manifest', obj)}")
        self._check_manifest_digest(digest, digest, resp.headers.get("docker-content-digest"))
        return digest

    # -- blobs: download -------------------------------------------------------------------

    async def fetch_blob(self, descriptor: Descriptor, content: ContentStore,
                         progress: ProgressFn | None = None) -> str:
        """Download a blob into ``content`` (resuming a partial one), verified; return digest."""
        import anyio

        digest, size = check_descriptor(descriptor)
        key = (str(content.root), digest)
        lock = _IN_FLIGHT.setdefault(key, anyio.Lock())
        try:
            # One download per blob in this process: a concurrent pull of the same image
            # waits here and then finds the blob present.
            async with lock:
                if content.has(digest):
                    return digest
                # The ingest waits (flock) for another process writing the same blob:
                # do that wait in a worker thread, not on the event loop.
                ingest = await anyio.to_thread.run_sync(content.ingest, digest, size)
                with ingest:
                    if ingest.offset < size or size == 0:
                        await self._download_into(ingest, digest, size, ingest.offset,
                                                  progress)
                    # A complete partial from an earlier attempt is judged by commit alone.
                    return await anyio.to_thread.run_sync(ingest.commit)
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                _IN_FLIGHT.pop(key, None)

    async def _download_into(self, ingest: Ingest, digest: str, size: int, offset: int,
                             progress: ProgressFn | None) -> None:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        resp = await self._request("GET", f"{self.base}/blobs/{digest}", headers=headers,
                                   stream=True, follow_redirects=True)
        try:
            if resp.status_code not in (200, 206):
                await resp.aread()
                raise registry_error(resp, self._what("blob", digest))
            if offset and resp.status_code == 200:
                ingest.reset()  # the server ignored Range and sends it all again
                offset = 0
            elif resp.status_code == 206:
                _check_content_range(resp.headers.get("content-range", ""), offset, digest)
            received = offset
            async for chunk in _raw_chunks(resp, f"blob {digest}"):
                received += len(chunk)
                if received > size:
                    raise InvalidArgument(f"blob {digest} is larger than its declared size "
                                          f"{size}")
                ingest.write(chunk)
                if progress is not None:
                    progress(received)
        finally:
            await resp.aclose()
        if received != size:
            raise InvalidArgument(f"blob {digest}: got {received} bytes, expected {size}")

    # -- blobs: upload ---------------------------------------------------------------------

    async def blob_exists(self, digest: str) -> bool:
        """HEAD the blob: whether the registry already has it in this repository."""
        validate_digest(digest)
        resp = await self._request("HEAD", f"{self.base}/blobs/{digest}")
        if resp.status_code == 404:
            return False
        if resp.status_code != 200:
            raise registry_error(resp, self._what("blob", digest))
        return True

    async def start_upload(self, mount: str | None = None,
                           source: str | None = None) -> tuple[bool, str | None]:
        """POST an upload; with ``mount``/``source`` try a cross-repository mount first.

        Returns ``(True, None)`` when the blob was mounted, else ``(False, location)``.
        """
        url = f"{self.base}/blobs/uploads/"
        if mount is not None and source is not None:
            validate_digest(mount)
            scope = f"repository:{source}:pull"
            if scope not in self.scopes:
                self.scopes = (*self.scopes, scope)
            url += f"?mount={mount}&from={source}"
        resp = await self._request("POST", url, headers={"Content-Length": "0"})
        await resp.aread()
        if resp.status_code == 201 and mount is not None:
            return True, None
        if resp.status_code != 202:
            raise registry_error(resp, f"starting an upload to {self.endpoint.domain}/{self.path}")
        return False, self._location(resp)

    def _location(self, resp: httpx.Response) -> str:
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"registry {self.endpoint.url} gave no upload location")
        return str(resp.request.url.join(location))

    async def upload_blob(self, location: str, digest: str, size: int,
                          chunks: Callable[[], AsyncIterator[bytes]],
                          *, chunked: bool = False,
                          progress: ProgressFn | None = None) -> None:
        """Send the blob to an upload ``location``: one PUT, or PATCHes then a final PUT."""
        import httpx

        if chunked:
            sent = 0
            async for chunk in chunks():
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Range": f"{sent}-{sent + len(chunk) - 1}"}
                resp = await self._request("PATCH", location, body=chunk, headers=headers)
                await resp.aread()
                if resp.status_code != 202:
                    raise registry_error(resp, f"uploading blob {digest}")
                location = self._location(resp)
                sent += len(chunk)
                if progress is not None:
                    progress(sent)
            final = str(httpx.URL(location).copy_add_param("digest", digest))
            resp = await self._request("PUT", final, body=b"",
                                       headers={"Content-Length": "0"})
        else:
            final = str(httpx.URL(location).copy_add_param("digest", digest))
            resp = await self._request(
                "PUT", final, body=_counting(chunks, progress),
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(size)})
        await resp.aread()
        if resp.status_code not in (201, 204):
            raise registry_error(resp, f"uploading blob {digest}")


def _counting(chunks: Callable[[], AsyncIterator[bytes]],
              progress: ProgressFn | None) -> Callable[[], AsyncIterator[bytes]]:
    async def counted() -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in chunks():
            yield chunk
            sent += len(chunk)
            if progress is not None:
                progress(sent)
    return counted


def _check_content_range(header: str, offset: int, digest: str) -> None:
    """A 206 answer must continue exactly where our partial download stopped."""
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", header.strip())
    if not m or int(m.group(1)) != offset:
        raise RegistryError(f"blob {digest}: registry resumed at {header!r}, asked for byte "
                            f"{offset}")


async def _raw_chunks(resp: httpx.Response, what: str) -> AsyncIterator[bytes]:
    """The body as sent (no decoding), with transport failures as RegistryError."""
    import ssl

    import httpx

    try:
        async for chunk in resp.aiter_raw():
            yield chunk
    except (httpx.HTTPError, ssl.SSLError) as err:
        raise RegistryError(f"{what}: download interrupted: {err}") from err


async def _read_limited(resp: httpx.Response, limit: int, what: str) -> bytes:
    """Read a body but stop as soon as it exceeds ``limit`` bytes."""
    data = bytearray()
    async for chunk in _raw_chunks(resp, what):
        data += chunk
        if len(data) > limit:
            raise InvalidArgument(f"{what} is larger than the {limit} bytes allowed")
    return bytes(data)
