"""Push an image from the local stores to a registry.

Each blob (config and layers) is first checked with HEAD; a missing one is cross-mounted
from another repository of the same registry that the image is known under, when there is
one, and uploaded otherwise (one PUT, or PATCH chunks then PUT). The manifest goes last.
Progress events follow the JSON stream of Docker's ``POST /images/{name}/push``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.manifest import MAX_MANIFEST_SIZE, Descriptor, parse_manifest
from pycompose.engine.images.pull import Progress, first_error, short_id
from pycompose.engine.images.pull import progress_event as _event
from pycompose.engine.images.reference import Reference, parse_reference
from pycompose.engine.images.registry import RegistryClient, RegistryConfig, Repository

if TYPE_CHECKING:
    from pycompose.engine.images.content import ContentStore
    from pycompose.engine.images.store import ImageRecord, ImageStore

DEFAULT_CONCURRENT_UPLOADS = 5
UPLOAD_CHUNK = 1024 * 1024


def mount_sources(record: ImageRecord, target: Reference) -> list[str]:
    """Other repositories on ``target``'s registry that the image is known under."""
    out: list[str] = []
    for name in [*record.repo_tags, *record.repo_digests]:
        try:
            ref = parse_reference(name)
        except InvalidArgument:
            continue
        if ref.domain == target.domain and ref.path != target.path and ref.path not in out:
            out.append(ref.path)
    return out


def _reader(content: ContentStore, digest: str, chunk: int) -> Callable[[], AsyncIterator[bytes]]:
    """A re-startable async reader of a stored blob, reading in a worker thread."""
    import anyio

    async def chunks() -> AsyncIterator[bytes]:
        fp = content.open(digest)
        try:
            while data := await anyio.to_thread.run_sync(fp.read, chunk):
                yield data
        finally:
            fp.close()
    return chunks


async def push_blob(repo: Repository, content: ContentStore, desc: Descriptor,
                    sources: list[str], emit: Progress, chunk_size: int | None) -> None:
    """Make ``desc`` present in ``repo``: existing, mounted, or uploaded."""
    ident = short_id(desc.digest)
    if await repo.blob_exists(desc.digest):
        emit(_event("Layer already exists", ident))
        return
    location: str | None = None
    for source in sources:
        mounted, location = await repo.start_upload(mount=desc.digest, source=source)
        if mounted:
            emit(_event(f"Mounted from {source}", ident))
            return
        break  # the registry opened a normal upload instead: use it
    if location is None:
        _, location = await repo.start_upload()
    assert location is not None

    def progress(current: int) -> None:
        emit(_event("Pushing", ident, current=current, total=desc.size))

    reader = _reader(content, desc.digest, chunk_size or UPLOAD_CHUNK)
    await repo.upload_blob(location, desc.digest, desc.size, reader,
                           chunked=chunk_size is not None, progress=progress)
    emit(_event("Pushed", ident))


async def push(reference: str, *, content: ContentStore, images: ImageStore,
               registry_config: RegistryConfig | None = None,
               progress: Progress | None = None,
               chunk_size: int | None = None,
               max_concurrent_uploads: int = DEFAULT_CONCURRENT_UPLOADS,
               client: RegistryClient | None = None) -> str:
    """Push the local image tagged ``reference``; return the pushed manifest's digest.

    ``chunk_size`` switches from monolithic uploads to chunked ones of that many bytes.
    """
    import anyio

    emit: Progress = progress or (lambda _event: None)
    ref = parse_reference(reference)
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference ({reference}); push a tag")
    record = images.resolve(str(ref))
    data = content.read(record.manifest_digest, MAX_MANIFEST_SIZE)
    media_type = record.manifest_media_type
    manifest = parse_manifest(data, media_type)
    emit({"status": f"The push refers to repository [{ref.name}]"})
    sources = mount_sources(record, ref)
    for layer in manifest.layers:
        emit(_event("Preparing", short_id(layer.digest)))
    own = client is None
    client = client or RegistryClient(registry_config)
    try:
        repo = await client.repository(ref, push=True)
        # The config first and alone: it settles authentication (and fails fast on a
        # refusal) before parallel uploads start.
        await push_blob(repo, content, manifest.config, sources, lambda _e: None, chunk_size)
        limiter = anyio.CapacityLimiter(max(1, max_concurrent_uploads))

        async def one(desc: Descriptor) -> None:
            async with limiter:
                await push_blob(repo, content, desc, sources, emit, chunk_size)

        try:
            async with anyio.create_task_group() as tg:
                for desc in manifest.layers:
                    tg.start_soon(one, desc)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        tag = ref.tag or "latest"
        digest = await repo.put_manifest(tag, data, media_type)
    finally:
        if own:
            await client.aclose()
    emit({"status": f"{tag}: digest: {digest} size: {len(data)}"})
    emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(data)}})
    return digest
