"""The images component of the engine daemon: Docker's ``/images/*`` and ``/auth`` routes.

``setup(ctx)`` opens the content, layer and image stores under the engine's root, shares them
as ``ctx.services["content"]``, ``["layers"]`` and ``["images"]``, and registers the routes.
Pull and push stream Docker's JSON progress lines as they happen; an error that comes before
the first real progress (a missing manifest, a bad reference) is answered with its own status
code instead, as Docker does, so clients print "Error response from daemon: ...".

The stores do blocking file I/O, so anything that writes or walks many files runs in a worker
thread; lookups (in-memory, after start-up) run on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from pycompose.engine.api.router import (
    ZERO,
    Request,
    Response,
    StreamResponse,
    check_fields,
    json_response,
)
from pycompose.engine.api.streams import json_line
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.engine.images import views
from pycompose.engine.images.content import ContentStore
from pycompose.engine.images.reference import Reference, familiar_name, parse_reference
from pycompose.engine.images.store import ImageRecord, ImageStore
from pycompose.storage.layers import LayerStore

if TYPE_CHECKING:
    from pycompose.engine.api.app import EngineContext
    from pycompose.engine.images.auth import AuthStore
    from pycompose.engine.images.registry import Credentials, RegistryConfig

Emit = Callable[[dict[str, Any]], None]

_BODY_CHUNK = 1 << 20
_AUTH_FIELDS = frozenset({"username", "password", "serveraddress", "email", "auth"})


def setup(ctx: EngineContext) -> None:
    """Open the image stores under ``ctx.config.root`` and register the image routes."""
    root = ctx.config.root
    content = ContentStore(root / "content")
    layers = LayerStore(root / "layers")
    layers.clean_tmp()  # half-unpacked layers of a crashed daemon
    images = ImageStore(root / "images", content, layers)
    ctx.services.update(content=content, layers=layers, images=images)
    service = ImagesService(ctx, content, layers, images)
    service.register()
    ctx.system.add_info_provider(lambda: {"Images": len(images.list())})


def decode_registry_auth(header: str | None) -> Credentials | None:
    """The credentials in an ``X-Registry-Auth`` header (base64url JSON), if it has any."""
    from pycompose.engine.images.registry import Credentials

    if header is None or not header.strip():
        return None
    # URL-safe base64 as Docker's clients send it; the standard alphabet is read too.
    text = header.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        doc = json.loads(raw) if raw.strip() else {}
    except (binascii.Error, ValueError) as err:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: expected a JSON object")
    if doc.get("identitytoken") or doc.get("registrytoken"):
        raise InvalidArgument("X-Registry-Auth: identity and registry tokens are not supported; "
                              "send a username and password")
    username, password = doc.get("username") or "", doc.get("password") or ""
    if not username:
        return None
    return Credentials(str(username), str(password))


def pull_reference(from_image: str, tag: str) -> Reference:
    """``fromImage`` and ``tag`` of a pull, combined as Docker does (a digest ``tag`` pins)."""
    ref = parse_reference(from_image, default_tag=not tag)
    if not tag:
        return ref
    if tag.startswith("sha256:"):
        return parse_reference(f"{Reference(ref.domain, ref.path, None, None)}@{tag}")
    return parse_reference(f"{Reference(ref.domain, ref.path, None, None)}:{tag}")


def registry_detail(err: Exception) -> str:
    """A registry's own words from our error (``manifest unknown: manifest unknown``).

    Our registry errors read ``<what>: <status> <CODE>: <message>``; Docker shows the
    code's description, lower case, then the message.
    """
    match = re.search(r": \d{3} ([A-Z_]+): (.*)$", str(err))
    if match is None:
        return str(err)
    return f"{match.group(1).replace('_', ' ').lower()}: {match.group(2)}"


def shown(name: str) -> str:
    """``name`` as Docker quotes it in messages: familiar and with its default tag."""
    try:
        return familiar_name(parse_reference(name))
    except InvalidArgument:
        return name


class ImagesService:
    """Handlers for the image routes of one engine."""

    def __init__(self, ctx: EngineContext, content: ContentStore, layers: LayerStore,
                 images: ImageStore, auth: AuthStore | None = None) -> None:
        self.ctx = ctx
        self.content = content
        self.layers = layers
        self.images = images
        self._auth = auth

    def register(self) -> None:
        """Add every route to the context's router."""
        add = self.ctx.router.add
        add("POST", "/images/create", self.create)
        add("GET", "/images/json", self.list_images)
        add("GET", "/images/get", self.save_many)
        add("POST", "/images/load", self.load)
        add("POST", "/images/prune", self.prune)
        add("GET", "/images/{name:path}/json", self.inspect)
        add("GET", "/images/{name:path}/history", self.history)
        add("GET", "/images/{name:path}/get", self.save_one)
        add("POST", "/images/{name:path}/tag", self.tag)
        add("POST", "/images/{name:path}/push", self.push)
        add("DELETE", "/images/{name:path}", self.delete)
        add("POST", "/auth", self.auth)

    # -- helpers --------------------------------------------------------------------------

    @property
    def auth_store(self) -> AuthStore:
        """The credentials store (``pycompose login``'s file, then docker's)."""
        if self._auth is None:
            from pycompose.engine.images.auth import AuthStore

            self._auth = AuthStore()
        return self._auth

    def registry_config(self, header: str | None) -> RegistryConfig:
        """Registry settings for one request: the daemon's mirrors, insecure registries
        (loopback always insecure) and certs.d roots, the header's credentials, then saved
        ones."""
        from pycompose.engine.images.registry import RegistryConfig

        given = decode_registry_auth(header)
        store = self.auth_store
        config = self.ctx.config

        def lookup(host: str) -> Credentials | None:
            return given if given is not None else store.lookup(host)

        return RegistryConfig(mirrors=config.registry_mirrors,
                              insecure_registries=config.registry_insecure_all,
                              certs_dirs=config.registry_certs_dirs,
                              credentials=lookup)

    def resolve(self, name: str) -> ImageRecord:
        """The image ``name`` names; NotFound worded as Docker's ``No such image: x:tag``."""
        try:
            return self.images.resolve(name)
        except NotFound:
            raise NotFound(f"No such image: {shown(name)}") from None

    def in_use(self, image_id: str) -> bool:
        """Whether a container uses the image (asks the containers component, if loaded)."""
        containers = self.ctx.services.get("containers")
        check = getattr(containers, "image_in_use", None)
        return bool(check(image_id)) if callable(check) else False

    def publish(self, action: str, actor: str, **attrs: str) -> None:
        """An ``image`` event on the engine's bus."""
        self.ctx.events.publish("image", action, actor, attrs)

    # -- pull and import ------------------------------------------------------------------

    async def create(self, req: Request) -> Response | StreamResponse:
        """``POST /images/create``: pull (``fromImage``) or import (``fromSrc``)."""
        from_image = req.query_str("fromImage") or ""
        from_src = req.query_str("fromSrc") or ""
        if from_image and from_src:
            raise InvalidArgument("fromImage and fromSrc are mutually exclusive")
        if from_src:
            return await self._import(req, from_src)
        if not from_image:
            raise InvalidArgument("either fromImage or fromSrc is required")
        return await self._pull(req, from_image)

    def _platform(self, req: Request) -> Any:
        from pycompose.engine.images.manifest import host_platform, parse_platform

        text = req.query_str("platform") or ""
        return parse_platform(text) if text else host_platform()

    async def _pull(self, req: Request, from_image: str) -> StreamResponse:
        from pycompose.engine.images.pull import pull

        ref = pull_reference(from_image, req.query_str("tag") or "")
        platform = self._platform(req)
        config = self.registry_config(req.header("x-registry-auth"))
        name = familiar_name(ref)

        async def work(emit: Emit) -> None:
            try:
                await pull(str(ref), content=self.content, images=self.images,
                           registry_config=config, progress=emit, platform=platform)
            except NotFound as err:
                raise NotFound(f"manifest for {name} not found: {registry_detail(err)}") from err
            self.publish("pull", name, name=name)

        return await progress_stream(work, early=1)

    async def _import(self, req: Request, from_src: str) -> Response:
        from pycompose.engine.images.archive import import_rootfs

        if from_src != "-":
            raise InvalidArgument(f"fromSrc={from_src!r}: importing from a URL is not "
                                  "supported; send the tarball in the request body (fromSrc=-)")
        repo, tag = req.query_str("repo") or "", req.query_str("tag") or ""
        reference = None
        if repo:
            ref = parse_reference(repo, default_tag=not tag)
            if ref.digest is not None:
                raise InvalidArgument(f"cannot import as a digest reference: {repo}")
            reference = str(ref if not tag else parse_reference(f"{ref.name}:{tag}"))
        changes = req.query.get("changes", [])
        message = req.query_str("message") or ""
        platform = self._platform(req)
        with await self._spool_body(req) as body:
            record = await asyncio.to_thread(
                import_rootfs, self.images, body, reference, changes, message, platform)
        self.publish("import", record.id, **({"name": shown(reference)} if reference else {}))
        return Response(body=json_line({"status": record.id}), content_type="application/json")

    async def _spool_body(self, req: Request) -> BinaryIO:
        """The whole request body in an unnamed temp file under the engine root, rewound."""
        tmp = cast(BinaryIO, tempfile.TemporaryFile(dir=self.ctx.config.root))  # noqa: SIM115
        try:
            while chunk := await req.body.read(_BODY_CHUNK):
                await asyncio.to_thread(tmp.write, chunk)
            tmp.seek(0)
        except BaseException:
            tmp.close()
            raise
        return tmp

    # -- list, inspect, history -----------------------------------------------------------

    async def list_images(self, req: Request) -> Response:
        """``GET /images/json``: summaries, newest first, filtered."""
        from pycompose.engine.api.events import parse_timestamp

        req.query_bool("all")  # there are no intermediate images to hide or show
        filt = views.list_filter(
            req.filters(),
            created_of=lambda name: views.created_unix(self.resolve(name)),
            parse_time=lambda text: parse_timestamp(text) // 1_000_000_000,
        )
        out = []
        for record in self.images.list():
            tags = filt.select(record)
            if tags is not None:
                out.append(views.image_summary(record, tags))
        return json_response(out)

    async def inspect(self, req: Request) -> Response:
        """``GET /images/{name}/json``."""
        record = self.resolve(req.params["name"])
        return json_response(views.image_inspect(record, self._graph_driver(record)))

    def _graph_driver(self, record: ImageRecord) -> dict[str, str]:
        from pycompose.storage.extract import LayerError

        try:
            dirs = [str(self.layers.diff_dir(c)) for c in reversed(record.layer_chain_ids)]
        except LayerError:
            return {}
        if not dirs:
            return {}
        data = {"UpperDir": dirs[0]}
        if len(dirs) > 1:
            data["LowerDir"] = ":".join(dirs[1:])
        return data

    async def history(self, req: Request) -> Response:
        """``GET /images/{name}/history``."""
        record = self.resolve(req.params["name"])
        sizes = [self.layers.info(c).size for c in record.layer_chain_ids]
        return json_response(views.image_history(record, sizes))

    # -- tag and delete -------------------------------------------------------------------

    async def tag(self, req: Request) -> Response:
        """``POST /images/{name}/tag?repo=&tag=``: 201 on success."""
        record = self.resolve(req.params["name"])
        repo, tag = req.query_str("repo") or "", req.query_str("tag") or ""
        if not repo:
            raise InvalidArgument("repo is required: the repository to tag the image into")
        ref = parse_reference(repo, default_tag=not tag)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {repo}")
        if tag:
            ref = parse_reference(f"{ref.name}:{tag}")
        await asyncio.to_thread(self.images.tag, record.id, str(ref))
        self.publish("tag", record.id, name=familiar_name(ref))
        return Response(status=201)

    async def delete(self, req: Request) -> Response:
        """``DELETE /images/{name}?force=&noprune=``: the untagged and deleted items."""
        # noprune is accepted and has nothing to act on: images here have no parent images.
        req.query_bool("noprune")
        items = await asyncio.to_thread(self.remove, req.params["name"], req.query_bool("force"))
        return json_response(items)

    def remove(self, name: str, force: bool) -> list[dict[str, str]]:
        """Docker's ``rmi`` rules: a name untags (and deletes with the last tag); an id
        deletes, refusing without force when several tags or a container still use it."""
        record = self.resolve(name)
        short = record.id[7:19]
        used = self.in_use(record.id)
        by_name = _named_by(record, name)
        items: list[dict[str, str]] = []
        if by_name is not None:
            last = len(record.repo_tags) + len(record.repo_digests) == 1 or (
                by_name in record.repo_tags and len(record.repo_tags) == 1)
            if last and used and not force:
                raise Conflict(f"conflict: unable to remove repository reference \"{by_name}\" "
                               f"(must force) - container is using its referenced image {short}")
            self._untag(record, by_name, items)
            record = self.images.resolve(record.id)
            if record.repo_tags:
                return items
        elif len(record.repo_tags) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                           "referenced in multiple repositories")
        elif used and not force:
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                           "being used by a container")
        for ref in [*record.repo_tags, *record.repo_digests]:
            self._untag(record, ref, items)
        if used:
            return items  # forced: the names go, the image stays for its container
        self.images.delete(record.id)
        items.append({"Deleted": record.id})
        self.publish_threadsafe("delete", record.id, name=record.id)
        return items

    def _untag(self, record: ImageRecord, ref: str, items: list[dict[str, str]]) -> None:
        self.images.untag(ref)
        items.append({"Untagged": ref})
        self.publish_threadsafe("untag", record.id, name=ref)

    def publish_threadsafe(self, action: str, actor: str, **attrs: str) -> None:
        """:meth:`publish` from a worker thread."""
        self.ctx.events.publish_threadsafe("image", action, actor, attrs)

    async def prune(self, req: Request) -> Response:
        """``POST /images/prune``: dangling (or, with ``dangling=false``, all unused) images."""
        from pycompose.engine.api.events import parse_timestamp

        filt = views.prune_filter(req.filters(),
                                  lambda text: parse_timestamp(text) // 1_000_000_000)
        deleted, reclaimed = await asyncio.to_thread(self._prune, filt)
        self.publish("prune", "", reclaimed=str(reclaimed))
        return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})

    def _prune(self, filt: views.PruneFilter) -> tuple[list[dict[str, str]], int]:
        sizes = {layer.chain_id: layer.size for layer in self.layers.list()}
        items: list[dict[str, str]] = []
        for record in self.images.list():
            if filt.candidate(record) and not self.in_use(record.id):
                items += self.remove(record.id, force=True)
        left = {layer.chain_id for layer in self.layers.list()}
        return items, sum(size for chain, size in sizes.items() if chain not in left)

    # -- push -----------------------------------------------------------------------------

    async def push(self, req: Request) -> StreamResponse:
        """``POST /images/{name}/push?tag=``: a tag, or every local tag of the repository."""
        from pycompose.engine.images.push import push

        name, tag = req.params["name"], req.query_str("tag") or ""
        base = parse_reference(name, default_tag=False)
        if tag:
            targets = [str(parse_reference(f"{base.name}:{tag}"))]
        elif base.tag is not None or base.digest is not None:
            targets = [str(base)]
        else:
            targets = [str(parse_reference(t)) for t in self._local_tags(base)]
        for target in targets:
            self.resolve(target)
        if not targets:
            raise NotFound(f"An image does not exist locally with the tag: {familiar_name(base)}")
        config = self.registry_config(req.header("x-registry-auth"))

        async def work(emit: Emit) -> None:
            for target in targets:
                await push(target, content=self.content, images=self.images,
                           registry_config=config, progress=emit)
                pushed = shown(target)
                self.publish("push", pushed, name=pushed)

        return await progress_stream(work, early=1)

    def _local_tags(self, repo: Reference) -> list[str]:
        out = []
        for record in self.images.list():
            for tag in record.repo_tags:
                ref = parse_reference(tag)
                if ref.name == repo.name:
                    out.append(tag)
        return sorted(out)

    # -- save and load --------------------------------------------------------------------

    async def save_one(self, req: Request) -> StreamResponse:
        """``GET /images/{name}/get``: a docker-archive tarball."""
        return await self._save([req.params["name"]])

    async def save_many(self, req: Request) -> StreamResponse:
        """``GET /images/get?names=a&names=b``."""
        names = [n for n in req.query.get("names", []) if n]
        if not names:
            raise InvalidArgument("names is required: the images to save")
        return await self._save(names)

    async def _save(self, names: list[str]) -> StreamResponse:
        from pycompose.engine.images.archive import save

        records = [self.resolve(n) for n in names]

        async def chunks() -> AsyncIterator[bytes]:
            # The pipe and the writer thread start with the body, so a response that is
            # never sent (HEAD, a client gone early) leaves nothing running.
            read_fd, write_fd = os.pipe()
            writer = os.fdopen(write_fd, "wb")

            def produce() -> None:
                with writer:
                    save(self.images, names, writer)

            task = asyncio.ensure_future(asyncio.to_thread(produce))
            try:
                while data := await asyncio.to_thread(os.read, read_fd, _BODY_CHUNK):
                    yield data
                await task
                for record in records:
                    self.publish("save", record.id, name=record.id)
            finally:
                os.close(read_fd)  # a writer still going gets EPIPE and stops
                with contextlib.suppress(Exception):
                    await task

        return StreamResponse(chunks(), content_type="application/x-tar")

    async def load(self, req: Request) -> Response:
        """``POST /images/load``: a docker-archive or OCI layout tarball in the body."""
        from pycompose.engine.images.archive import load

        req.query_bool("quiet")  # there is no progress bar to hide: loading is one step
        with await self._spool_body(req) as body:
            records = await asyncio.to_thread(load, self.images, body)
        lines = b""
        for record in records:
            names = record.repo_tags or (record.id,)
            for name in names:
                label = "Loaded image" if record.repo_tags else "Loaded image ID"
                lines += json_line({"stream": f"{label}: {name}\n"})
            self.publish("load", record.id, name=names[0])
        return Response(body=lines, content_type="application/json")

    # -- auth -----------------------------------------------------------------------------

    async def auth(self, req: Request) -> Response:
        """``POST /auth``: check credentials against a registry (nothing is stored)."""
        from pycompose.engine.images.auth import registry_key
        from pycompose.engine.images.registry import Credentials, RegistryClient

        body = await req.json_object()
        check_fields(body, where="", known=_AUTH_FIELDS,
                     unsupported={"identitytoken": ZERO, "registrytoken": ZERO})
        username = str(body.get("username") or "")
        if not username:
            raise InvalidArgument("username is required")
        server = registry_key(str(body.get("serveraddress") or "docker.io"))
        creds = Credentials(username, str(body.get("password") or ""))
        async with RegistryClient(self.registry_config(None)) as client:
            await client.check_login(server, creds)
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def _named_by(record: ImageRecord, name: str) -> str | None:
    """The familiar reference among the image's names that ``name`` spells, if any."""
    try:
        ref = parse_reference(name)
    except InvalidArgument:
        return None
    familiar = familiar_name(ref)
    if familiar in record.repo_tags or familiar in record.repo_digests:
        return familiar
    return None


async def progress_stream(work: Callable[[Emit], Awaitable[None]], *,
                          early: int) -> StreamResponse:
    """Run ``work`` and stream the progress it emits as JSON lines.

    The first ``early`` events are held back: if ``work`` fails before emitting more, its
    error becomes the HTTP answer (status and ``{"message"}``) rather than an in-stream
    error, as Docker answers a pull of a missing image with a 404.
    """
    loop = asyncio.get_running_loop()
    owner = threading.get_ident()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(event: dict[str, Any]) -> None:
        if threading.get_ident() == owner:
            queue.put_nowait(event)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    task = asyncio.ensure_future(work(emit))
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    held: list[dict[str, Any]] = []
    ended = False
    try:
        while len(held) <= early:
            event = await queue.get()
            if event is None:
                ended = True
                break
            held.append(event)
        if ended and not task.cancelled() and task.exception() is not None:
            raise _unwrap(task.exception())
    except BaseException:
        task.cancel()
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            for event in held:
                yield json_line(event)
            while not ended:
                item = await queue.get()
                if item is None:
                    break
                yield json_line(item)
            exc = task.exception() if not task.cancelled() else None
            if exc is not None:
                raise _unwrap(exc)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    return StreamResponse(chunks())


def _unwrap(exc: BaseException | None) -> BaseException:
    assert exc is not None
    return exc

