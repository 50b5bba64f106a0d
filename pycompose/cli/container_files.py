"""``cp``, ``export`` and ``commit``: files in and out of containers.

``cp`` follows docker's rules: the archive API (``GET``/``PUT``/``HEAD
/containers/{id}/archive``) moves tar streams, and the client decides names: a source copied
into an existing directory keeps its name, one copied to a path that does not exist takes
that name, ``SRC/.`` copies a directory's contents, ``-`` is a tar stream on stdin/stdout.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import tarfile
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pycompose.cli import framework as fw
from pycompose.cli.container_base import CliError, engine_command, save_chunks, write_out

if TYPE_CHECKING:
    from pycompose.engine.client import ClientResponse, EngineClient

_DIR_BIT = 1 << 31  # Go's os.ModeDir in the path-stat header
_CHUNK = 256 * 1024


class _ResponseReader(io.RawIOBase):
    """A streamed response body as a file for :mod:`tarfile`."""

    def __init__(self, resp: ClientResponse) -> None:
        self._resp = resp
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if not self._buf:
            self._buf = self._resp.read_chunk()
        n = min(len(target), len(self._buf))
        target[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def split_target(arg: str) -> tuple[str | None, str]:
    """``container:path`` -> ``(container, path)``; a local path -> ``(None, path)``.

    As docker does, a colon after a slash (or a path starting with ``.`` or ``/``) is local.
    """
    if arg.startswith(("/", ".")):
        return None, arg
    name, colon, path = arg.partition(":")
    if not colon or "/" in name:
        return None, arg
    return name, path


def path_stat(client: EngineClient, container: str, path: str) -> dict[str, Any] | None:
    """The container path's stat (``HEAD .../archive``), ``None`` when it does not exist."""
    from pycompose.engine.errors import NotFound

    try:
        with client.request(
            "HEAD", f"/containers/{container}/archive", query={"path": path}
        ) as resp:
            header = resp.headers.get("x-docker-container-path-stat", "")
    except NotFound:
        return None
    try:
        stat = json.loads(base64.b64decode(header)) if header else {}
    except ValueError as err:
        raise CliError(f"unable to decode container path stat header: {err}") from err
    return stat if isinstance(stat, dict) else {}


def _renamed(member: tarfile.TarInfo, old: str, new: str) -> tarfile.TarInfo:
    if member.name == old or member.name.startswith(old + "/"):
        member.name = new + member.name[len(old) :]
    return member


def copy_from(client: EngineClient, container: str, src: str, dest: str) -> int:
    """Container -> local; returns the bytes received."""
    if dest == "-":
        with client.stream("GET", f"/containers/{container}/archive", query={"path": src}) as resp:
            total = 0
            for chunk in resp.iter_chunks():
                write_out(chunk)
                total += len(chunk)
        return total
    contents = src.endswith("/.")
    dest_is_dir = os.path.isdir(dest)
    if not os.path.exists(dest) and dest.endswith("/"):
        stat = path_stat(client, container, src) or {}
        if not int(stat.get("mode", 0)) & _DIR_BIT:
            raise CliError(f"destination directory {dest!r} must exist")
    parent = dest if dest_is_dir else os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise CliError(f"destination directory {parent!r} does not exist")
    with client.stream("GET", f"/containers/{container}/archive", query={"path": src}) as resp:
        header = resp.headers.get("x-docker-container-path-stat", "")
        stat = json.loads(base64.b64decode(header)) if header else {}
        src_base = str(stat.get("name") or os.path.basename(src.rstrip("/")) or "/")
        src_is_dir = bool(int(stat.get("mode", 0)) & _DIR_BIT)
        if src_is_dir and os.path.isfile(dest):
            raise CliError(f"cannot copy a directory to a file: {dest}")
        new_base = None if dest_is_dir and not contents else os.path.basename(dest.rstrip("/"))
        if contents and dest_is_dir:
            new_base = "."
        reader = io.BufferedReader(_ResponseReader(resp), 65536)
        total = 0
        uid, gid = os.getuid(), os.getgid()
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if new_base is not None:
                    _renamed(member, src_base, new_base)
                total += member.size
                member.uid, member.gid = uid, gid  # files belong to the caller, as with docker
                tar.extract(member, parent, set_attrs=True, numeric_owner=True, filter="tar")
    return total


def _tar_of(src: str, name: str) -> Iterator[bytes]:
    """The tar of ``src`` named ``name`` (``.``: its contents), produced while it is read."""
    from pycompose.cli.tar_stream import tar_chunks

    def build(tar: tarfile.TarFile) -> None:
        if name == ".":  # SRC/. : the directory's contents
            for entry in sorted(os.listdir(src)):
                tar.add(os.path.join(src, entry), arcname=entry)
        else:
            tar.add(src, arcname=name)

    return tar_chunks(build)


class _Counted:
    """Chunks passed through, counting their bytes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.total = 0

    def stream(self) -> Generator[bytes, None, None]:
        """The chunks; close the generator to stop early."""
        chunks = iter(self.chunks)
        try:
            for chunk in chunks:
                self.total += len(chunk)
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # stops a tar writer whose upload ended early


def _stdin_chunks() -> Iterator[bytes]:
    while chunk := sys.stdin.buffer.read(_CHUNK):
        yield chunk


def copy_to(client: EngineClient, container: str, src: str, dest: str, archive_ids: bool) -> int:
    """Local -> container; returns the bytes sent (the tar is streamed, never held whole)."""
    query: dict[str, Any] = {"noOverwriteDirNonDir": True, "copyUIDGID": archive_ids or None}
    if src == "-":
        body = _Counted(_stdin_chunks())
        target = dest
    else:
        if not os.path.lexists(src):
            raise CliError(f"lstat {src}: no such file or directory")
        stat = path_stat(client, container, dest)
        src_is_dir = os.path.isdir(src)
        contents = src_is_dir and src.endswith("/.")
        if stat is not None and int(stat.get("mode", 0)) & _DIR_BIT:
            target = dest
            name = "." if contents else os.path.basename(os.path.normpath(src))
        elif stat is not None and src_is_dir:
            raise CliError(f"cannot copy a directory to a file: {dest}")
        elif stat is None and dest.endswith("/"):
            # Meant as a directory: the engine refuses the upload if it does not exist.
            target = dest
            name = "." if contents else os.path.basename(os.path.normpath(src))
        else:
            target = os.path.dirname(dest.rstrip("/")) or "/"
            name = os.path.basename(dest.rstrip("/"))
        body = _Counted(_tar_of(src, name))
    query["path"] = target
    chunks = body.stream()
    try:
        with client.request(
            "PUT",
            f"/containers/{container}/archive",
            query=query,
            data=chunks,
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
        ) as resp:
            resp.read()
    finally:
        chunks.close()
    return body.total


@fw.command("cp")
@engine_command()
@fw.argument("source")
@fw.argument("destination")
@fw.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid info).")
@fw.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@fw.option("-q", "--quiet", is_flag=True, help="Suppress progress output.")
def cp(
    client: EngineClient,
    source: str,
    destination: str,
    archive: bool,
    follow_link: bool,
    quiet: bool,
) -> None:
    """Copy files/folders between a container and the local filesystem."""
    from pycompose.cli.render import human_size

    src_ctr, src = split_target(source)
    dst_ctr, dest = split_target(destination)
    if src_ctr and dst_ctr:
        raise CliError("copying between containers is not supported")
    if not src_ctr and not dst_ctr:
        raise CliError("must specify at least one container source")
    if follow_link and src_ctr is None and src != "-":
        src = os.path.realpath(src)
    if src_ctr:
        size = copy_from(client, src_ctr, src, dest)
        where = dest
    else:
        assert dst_ctr is not None
        size = copy_to(client, dst_ctr, src, dest, archive)
        where = f"{dst_ctr}:{dest}"
    if not quiet and dest != "-" and sys.stderr.isatty():  # docker: only on a terminal
        fw.echo(f"Successfully copied {human_size(size)} to {where}", err=True)


@fw.command("export")
@engine_command()
@fw.argument("container")
@fw.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT.")
def export(client: EngineClient, container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar archive."""
    if output is None and sys.stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    with client.stream("GET", f"/containers/{container}/export") as resp:
        save_chunks(resp.iter_chunks(), output)


def split_repo_tag(reference: str) -> tuple[str, str]:
    """``repo[:tag]`` (a port in the registry part is not a tag)."""
    repo, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, ""
    return repo, tag


@fw.command("commit")
@engine_command()
@fw.argument("container")
@fw.argument("repository", required=False)
@fw.option("-a", "--author", default="", help='Author (e.g. "John <john@x.org>").')
@fw.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction.")
@fw.option("-m", "--message", default="", help="Commit message.")
@fw.option("--pause/--no-pause", default=True, help="Pause container during commit.")
def commit(
    client: EngineClient,
    container: str,
    repository: str | None,
    author: str,
    changes: tuple[str, ...],
    message: str,
    pause: bool,
) -> None:
    """Create a new image from a container's changes."""
    repo, tag = split_repo_tag(repository) if repository else ("", "")
    query: dict[str, Any] = {
        "container": container,
        "repo": repo or None,
        "tag": tag or None,
        "comment": message or None,
        "author": author or None,
        "pause": pause,
        "changes": list(changes) or None,
    }
    result = client.post("/commit", body={}, query=query)
    fw.echo(str(result.get("Id", "")))
