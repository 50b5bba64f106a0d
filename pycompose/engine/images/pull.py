"""Pull an image from a registry into the content and image stores.

Progress is reported as dicts shaped like the JSON stream of Docker's ``POST /images/create``
(``{"status": "Downloading", "progressDetail": {"current": n, "total": t}, "id": "<12 hex>"}``)
so the API server can forward them unchanged and the CLI can render them like docker does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pycompose.engine.errors import EngineError, InvalidArgument, NotFound
from pycompose.engine.images.manifest import (
    Descriptor,
    Index,
    Manifest,
    Platform,
    host_platform,
    parse,
    parse_manifest,
    select_platform,
)
from pycompose.engine.images.reference import Reference, familiar_name, parse_reference
from pycompose.engine.images.registry import (
    RawManifest,
    RegistryClient,
    RegistryConfig,
    Repository,
)

if TYPE_CHECKING:
    from pycompose.engine.images.content import ContentStore
    from pycompose.engine.images.store import ImageRecord, ImageStore

Progress = Callable[[dict[str, Any]], None]
DEFAULT_CONCURRENT_DOWNLOADS = 3
# Emit a "Downloading" event at most every this many bytes per layer (plus the last one).
_PROGRESS_STEP = 512 * 1024


def short_id(digest: str) -> str:
    """The 12 hex digits docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]


def progress_event(status: str, ident: str | None = None, **detail: int) -> dict[str, Any]:
    """One progress dict; per-layer events carry ``id`` and ``progressDetail``."""
    event: dict[str, Any] = {"status": status}
    if ident is not None:
        event["progressDetail"] = dict(detail)
        event["id"] = ident
    return event


async def open_for_pull(client: RegistryClient, ref: Reference) -> tuple[Repository, RawManifest]:
    """Find ``ref``'s manifest: on the Docker Hub mirrors first, then on its registry.

    A mirror that fails in any way (down, missing the image, refusing us) is skipped; the
    registry's own error is what the caller sees when everything fails.
    """
    openers = client.pull_repositories(ref)
    for i, opener in enumerate(openers):
        try:
            repo = await opener()
            return repo, await repo.get_manifest(ref.object)
        except EngineError:
            if i == len(openers) - 1:
                raise
    raise AssertionError("pull_repositories always yields the registry itself")


async def resolve_manifest(repo: Repository, top: RawManifest,
                           platform: Platform) -> tuple[RawManifest, Manifest]:
    """The single-platform manifest for ``top`` (itself, or the index entry for ``platform``)."""
    doc = parse(top.data, top.media_type or None)
    if isinstance(doc, Manifest):
        return top, doc
    desc = select_platform(_as_index(doc), platform)
    raw = await repo.get_manifest(desc.digest)
    if raw.digest != desc.digest:
        raise InvalidArgument(f"manifest digest mismatch: index names {desc.digest}, "
                              f"got {raw.digest}")
    return raw, parse_manifest(raw.data, raw.media_type or None)


def _as_index(doc: Index | Manifest) -> Index:
    if not isinstance(doc, Index):
        raise InvalidArgument("expected an index")
    return doc


class _LayerProgress:
    """Turns byte counts for one blob into throttled Docker-style events."""

    def __init__(self, emit: Progress, desc: Descriptor) -> None:
        self.emit = emit
        self.ident = short_id(desc.digest)
        self.total = desc.size
        self.last = -_PROGRESS_STEP

    def __call__(self, current: int) -> None:
        if current - self.last >= _PROGRESS_STEP or current == self.total:
            self.last = current
            self.emit(progress_event("Downloading", self.ident, current=current,
                                     total=self.total))


async def download_blobs(repo: Repository, content: ContentStore, blobs: list[Descriptor],
                         emit: Progress, limit: int) -> list[Descriptor]:
    """Fetch the missing blobs, at most ``limit`` at once; return the ones downloaded."""
    import anyio

    limiter = anyio.CapacityLimiter(max(1, limit))
    fetched: list[Descriptor] = []

    async def one(desc: Descriptor) -> None:
        ident = short_id(desc.digest)
        if limiter.available_tokens == 0:
            emit(progress_event("Waiting", ident))
        async with limiter:
            await repo.fetch_blob(desc, content, _LayerProgress(emit, desc))
            emit(progress_event("Verifying Checksum", ident))
            emit(progress_event("Download complete", ident))
            fetched.append(desc)

    try:
        async with anyio.create_task_group() as tg:
            for desc in blobs:
                if content.has(desc.digest):
                    emit(progress_event("Already exists", short_id(desc.digest)))
                else:
                    tg.start_soon(one, desc)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return fetched


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error in a task group's exception group (callers expect ours, not a
    group: the first failing download cancels the others)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        return exc
    return group


def _store_reference(ref: Reference) -> str:
    """What the image store should record: ``name@digest`` when pinned (a tag given with a
    digest is not created, as docker does), else ``name:tag``."""
    if ref.digest is not None:
        return str(Reference(ref.domain, ref.path, None, ref.digest))
    return str(ref)


def _current_id(images: ImageStore, name: str) -> str | None:
    try:
        return images.resolve(name).id
    except NotFound:
        return None


async def pull(reference: str, *, content: ContentStore, images: ImageStore,
               registry_config: RegistryConfig | None = None,
               progress: Progress | None = None,
               platform: Platform | None = None,
               max_concurrent_downloads: int = DEFAULT_CONCURRENT_DOWNLOADS,
               client: RegistryClient | None = None) -> ImageRecord:
    """Pull ``reference`` (docker syntax, normalised) and register it in ``images``.

    ``platform`` defaults to this machine's. ``client`` may be shared between pulls;
    otherwise one is opened and closed here.
    """
    import anyio

    emit: Progress = progress or (lambda _event: None)
    ref = parse_reference(reference)
    wanted = platform or host_platform()
    emit(progress_event(f"Pulling from {ref.path}", ref.tag or ref.digest))
    own = client is None
    client = client or RegistryClient(registry_config)
    try:
        repo, top = await open_for_pull(client, ref)
        raw, manifest = await resolve_manifest(repo, top, wanted)
        for layer in manifest.layers:
            if not content.has(layer.digest):
                emit(progress_event("Pulling fs layer", short_id(layer.digest)))
        await repo.fetch_blob(manifest.config, content)
        fetched = await download_blobs(repo, content, list(manifest.layers), emit,
                                       max_concurrent_downloads)
    finally:
        if own:
            await client.aclose()
    content.put_bytes(raw.data, raw.digest)
    name = _store_reference(ref)
    before = _current_id(images, name)
    # The top document goes to the store, so that an index's digest is the repo digest.
    record = await anyio.to_thread.run_sync(functools.partial(
        images.register, top.data, top.media_type, name, platform=wanted))
    for desc in fetched:
        emit(progress_event("Pull complete", short_id(desc.digest)))
    emit({"status": f"Digest: {top.digest}"})
    shown = familiar_name(ref)
    if before == record.id:
        emit({"status": f"Status: Image is up to date for {shown}"})
    else:
        emit({"status": f"Status: Downloaded newer image for {shown}"})
    return record
