"""Routes that move files in and out of containers: export, commit and archive (``cp``).

Each needs the container's root filesystem mounted on the host. A running container's is;
for a stopped one it is mounted for the time of the request, under the container's lock
so that it is not started, stopped or removed meanwhile, and unmounted after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pycompose.engine.api.router import Request, Response, StreamResponse, json_response
from pycompose.engine.containers import archive, commit
from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import InvalidArgument
from pycompose.storage.overlay import mount_rootfs, unmount_rootfs

if TYPE_CHECKING:
    from pycompose.engine.api.app import EngineContext
    from pycompose.engine.containers.manager import ContainerManager
    from pycompose.engine.images.content import ContentStore

_CHUNK = 1 << 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FilesApi:
    """Export, commit and archive handlers."""

    def __init__(self, mgr: ContainerManager, content: ContentStore) -> None:
        self.mgr = mgr
        self.content = content

    def register(self, ctx: EngineContext) -> None:
        """Add the routes to ``ctx.router``."""
        ctx.router.add("GET", "/containers/{id}/export", self.export)
        ctx.router.add("POST", "/commit", self.commit)
        ctx.router.add("GET", "/containers/{id}/changes", self.changes)
        ctx.router.add("HEAD", "/containers/{id}/archive", self.archive_head)
        ctx.router.add("GET", "/containers/{id}/archive", self.archive_get)
        ctx.router.add("PUT", "/containers/{id}/archive", self.archive_put)

    async def _acquire(self, record: ContainerRecord) -> tuple[Path, Callable[[], Any]]:
        """Lock the container, mount its rootfs if needed; returns (merged, release)."""
        live = self.mgr.live_of(record)
        await live.lock.acquire()
        try:
            image = self.mgr.images.resolve(record.image_id)
            lower = self.mgr.layers.rootfs_lowerdirs(list(image.layer_chain_ids))
            directory = self.mgr.dir(record)
            was_mounted = record.state.status in ("running", "paused")
            dirs = await asyncio.to_thread(mount_rootfs, self.mgr.mounter, lower, directory)
        except BaseException:
            live.lock.release()
            raise

        async def release() -> None:
            try:
                if not was_mounted and record.state.status not in ("running", "paused"):
                    await asyncio.to_thread(unmount_rootfs, self.mgr.mounter, directory)
            finally:
                live.lock.release()

        return dirs.merged, release

    @contextlib.asynccontextmanager
    async def _rootfs(self, record: ContainerRecord) -> AsyncIterator[Path]:
        merged, release = await self._acquire(record)
        try:
            yield merged
        finally:
            await release()

    async def export(self, req: Request) -> StreamResponse:
        """The container's root filesystem as a tar stream."""
        record = self.mgr.get(req.params["id"])

        async def body() -> AsyncIterator[bytes]:
            # Taken only once the body is really produced: a HEAD request or a client that
            # hangs up before reading never starts this generator, so never leaks the lock.
            async with self._rootfs(record) as merged:
                async for chunk in _thread_stream(lambda out: commit.export_tar(merged, out)):
                    yield chunk
            self.mgr.publish(record, "export")

        return StreamResponse(body(), content_type="application/x-tar")

    async def changes(self, req: Request) -> Response:
        """``docker diff``: what the container changed in its image's filesystem."""
        record = self.mgr.get(req.params["id"])
        image = self.mgr.images.resolve(record.image_id)
        lower = self.mgr.layers.rootfs_lowerdirs(list(image.layer_chain_ids))
        found = await asyncio.to_thread(commit.changes, self.mgr.dir(record) / "upper", lower)
        return json_response(found or None)

    async def commit(self, req: Request) -> Response:
        """``POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=``: 201."""
        ref = req.query_str("container")
        if not ref:
            raise InvalidArgument("No container name or ID supplied")
        record = self.mgr.get(ref)
        overrides = await req.json_object(required=False)
        repo, tag = req.query_str("repo") or "", req.query_str("tag") or ""
        if tag and not repo:
            raise InvalidArgument("a tag needs a repository name")
        reference = f"{repo}:{tag or 'latest'}" if repo else None
        runner = self.mgr.runner
        assert runner is not None
        pause = req.query_bool("pause", True) and record.state.status == "running"
        if pause:
            await runner.pause(record, True)
        try:
            image = self.mgr.images.resolve(record.image_id)
            manifest, media_type = await asyncio.to_thread(
                commit.build_image, record, image, self.mgr.dir(record) / "upper",
                self.content, overrides=overrides, changes=req.query.get("changes", []),
                comment=req.query_str("comment") or "", author=req.query_str("author") or "",
            )  # fmt: skip
            new = await asyncio.to_thread(self.mgr.images.register, manifest, media_type,
                                          reference)  # fmt: skip
        finally:
            if pause:
                await runner.pause(record, False)
        self.mgr.publish(record, "commit", comment=req.query_str("comment") or "",
                         imageID=new.id, imageRef=reference or "")  # fmt: skip
        return json_response({"Id": new.id}, status=201)

    def _path(self, req: Request) -> str:
        path = req.query_str("path") or ""
        if not path:
            raise InvalidArgument("Bad parameters: path cannot be empty")
        return path

    async def archive_head(self, req: Request) -> Response:
        """Only the ``X-Docker-Container-Path-Stat`` header."""
        record, path = self.mgr.get(req.params["id"]), self._path(req)
        async with self._rootfs(record) as merged:
            info = await asyncio.to_thread(_stat_in, merged, path, record.id)
        return Response(status=200, headers={"X-Docker-Container-Path-Stat":
                                             archive.stat_header(info)})  # fmt: skip

    async def archive_get(self, req: Request) -> StreamResponse:
        """A tar of ``path`` (its last component as the top entry), with the stat header."""
        record, path = self.mgr.get(req.params["id"]), self._path(req)
        async with self._rootfs(record) as merged:
            info = await asyncio.to_thread(_stat_in, merged, path, record.id)

        async def body() -> AsyncIterator[bytes]:
            async with self._rootfs(record) as merged:
                root_fd = os.open(merged, _DIR)
                try:
                    parent, name = archive.open_parent(root_fd, path, record.id)
                finally:
                    os.close(root_fd)
                try:
                    async for chunk in _thread_stream(
                            lambda out: archive.write_tree(out, parent, name, name)):
                        yield chunk
                finally:
                    os.close(parent)

        return StreamResponse(body(), content_type="application/x-tar",
                              headers={"X-Docker-Container-Path-Stat":
                                       archive.stat_header(info)})  # fmt: skip

    async def archive_put(self, req: Request) -> Response:
        """Unpack the tar body into the directory ``path``."""
        record, path = self.mgr.get(req.params["id"]), self._path(req)
        keep_owner = req.query_bool("copyUIDGID")
        no_overwrite = req.query_bool("noOverwriteDirNonDir")
        with tempfile.TemporaryFile(dir=self.mgr.store.root) as spool:
            while chunk := await req.body.read(_CHUNK):
                spool.write(chunk)
            spool.seek(0)
            async with self._rootfs(record) as merged:
                await asyncio.to_thread(_extract_at, spool, merged, path, record.id,
                                        keep_owner, no_overwrite)  # fmt: skip
        return Response(status=200)


def _stat_in(merged: Path, path: str, cid: str) -> dict[str, Any]:
    root_fd = os.open(merged, _DIR)
    try:
        parent, name = archive.open_parent(root_fd, path, cid)
    finally:
        os.close(root_fd)
    try:
        return archive.path_stat(parent, name, path, cid)
    finally:
        os.close(parent)


def _extract_at(spool: IO[bytes], merged: Path, path: str, cid: str, keep_owner: bool,
                no_overwrite: bool) -> None:  # fmt: skip
    root_fd = os.open(merged, _DIR)
    try:
        parent, name = archive.open_parent(root_fd, path, cid)
    finally:
        os.close(root_fd)
    try:
        try:
            dest = os.open(name, _DIR, dir_fd=parent) if name != "." else os.dup(parent)
        except (FileNotFoundError, NotADirectoryError, OSError):
            raise InvalidArgument(f"extraction point is not a directory: {path}") from None
        try:
            archive.extract_into(spool, dest, keep_owner=keep_owner,
                                 no_overwrite_dir_non_dir=no_overwrite)  # fmt: skip
        finally:
            os.close(dest)
    finally:
        os.close(parent)


async def _thread_stream(produce: Callable[[IO[bytes]], None]) -> AsyncIterator[bytes]:
    """Run ``produce(out)`` in a thread writing into a pipe; yield what it writes."""
    read_fd, write_fd = os.pipe()

    def run() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out:
                produce(out)
        except BrokenPipeError:
            pass  # the client went away and the reading end is closed

    thread = threading.Thread(target=run, name="tar-stream", daemon=True)
    thread.start()
    try:
        while chunk := await asyncio.to_thread(os.read, read_fd, _CHUNK):
            yield chunk
    finally:
        os.close(read_fd)
        await asyncio.to_thread(thread.join)
