"""File mounts for compose ``secrets`` and ``configs``: the right content, owner and mode.

API shape (our choice, documented here and in the report): the container create request may
carry two extra top-level lists, ``Secrets`` and ``Configs``, in the shape of Docker's
Swarm ``ContainerSpec`` entries plus the content, since only the client can read the file,
the environment variable or the inline text compose names::

    {"SecretName": "db_password",                 # or "ConfigName" for Configs
     "File": {"Name": "/run/secrets/db_password", "UID": "0", "GID": "0", "Mode": 292},
     "Data": "<base64 of the content>"}

``File.Name`` defaults to ``/run/secrets/<name>`` for secrets (a relative name goes below
``/run/secrets``) and to ``/<name>`` for configs (a relative name goes below ``/``); ``UID`` and
``GID`` are decimal strings (default ``"0"``), ``Mode`` an integer (default 0o444). A real
Docker daemon ignores these fields outside Swarm; pycompose's engine honours them.

The engine writes each file into a per-container directory (0700, root's) with the requested
owner and mode, fsynced, and bind-mounts it read-only at its target. Secrets are limited to
500 KiB and configs to 1000 KiB, like Swarm.
"""

from __future__ import annotations

import base64
import binascii
import os
import posixpath
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycompose.engine.api.router import check_fields
from pycompose.engine.errors import InvalidArgument
from pycompose.storage.mounts import check_target

if TYPE_CHECKING:  # the client side (compose building a request) needs no runtime code
    from pycompose.engine.runtime.spec import MountSpec

MAX_SECRET = 500 * 1024
MAX_CONFIG = 1000 * 1024
DEFAULT_MODE = 0o444


@dataclass(frozen=True)
class FileMount:
    """One secret or config file: ``kind`` is ``secret`` or ``config``."""

    kind: str
    name: str
    target: str
    data: bytes
    uid: int = 0
    gid: int = 0
    mode: int = DEFAULT_MODE


def default_target(kind: str, name: str, target: str = "") -> str:
    """Where compose puts a secret or config: ``/run/secrets/<name>`` or ``/<name>``."""
    base = "/run/secrets" if kind == "secret" else "/"
    path = target or name
    return check_target(path if path.startswith("/") else posixpath.join(base, path))


def file_mount(
    kind: str,
    name: str,
    data: bytes,
    *,
    target: str = "",
    uid: int | str = 0,
    gid: int | str = 0,
    mode: int | None = None,
) -> FileMount:
    """Build and check a :class:`FileMount` (from compose's model or the API)."""
    if kind not in ("secret", "config"):
        raise InvalidArgument(f"unknown file mount kind {kind!r}")
    if not name or "/" in name:
        raise InvalidArgument(f"invalid {kind} name {name!r}")
    limit = MAX_SECRET if kind == "secret" else MAX_CONFIG
    if len(data) > limit:
        raise InvalidArgument(f"{kind} {name}: {len(data)} bytes is over the {limit} byte limit")
    ids = []
    for what, value in (("uid", uid), ("gid", gid)):
        text = str(value if value != "" else 0)
        if not text.isdigit() or int(text) > 2**32 - 2:
            raise InvalidArgument(f"{kind} {name}: invalid {what} {value!r} (a number)")
        ids.append(int(text))
    mode = DEFAULT_MODE if mode is None else mode
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"{kind} {name}: invalid mode {mode!r}")
    return FileMount(kind, name, default_target(kind, name, target), data, ids[0], ids[1], mode)


def parse_api(secrets: Sequence[Any] | None, configs: Sequence[Any] | None) -> list[FileMount]:
    """The ``Secrets`` and ``Configs`` lists of a create request (see the module docs)."""
    out: list[FileMount] = []
    for kind, items, name_key in (
        ("secret", secrets, "SecretName"),
        ("config", configs, "ConfigName"),
    ):
        for item in items or []:
            out.append(_parse_one(kind, item, name_key))
    targets = [m.target for m in out]
    dup = {t for t in targets if targets.count(t) > 1}
    if dup:
        raise InvalidArgument(f"two secrets/configs mount at {sorted(dup)[0]}")
    return out


def _parse_one(kind: str, item: Any, name_key: str) -> FileMount:
    where = "Secrets" if kind == "secret" else "Configs"
    if not isinstance(item, Mapping):
        raise InvalidArgument(f"{where} entries must be objects")
    check_fields(item, where=where, known={name_key, "File", "Data", "SecretID", "ConfigID"})
    file = item.get("File") or {}
    if not isinstance(file, Mapping):
        raise InvalidArgument(f"{where}.File must be an object")
    check_fields(file, where=f"{where}.File", known={"Name", "UID", "GID", "Mode"})
    try:
        data = base64.b64decode(str(item.get("Data") or ""), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidArgument(f"{where}.Data must be base64: {err}") from err
    return file_mount(
        kind,
        str(item.get(name_key) or ""),
        data,
        target=str(file.get("Name") or ""),
        uid=file.get("UID") or 0,
        gid=file.get("GID") or 0,
        mode=file.get("Mode"),
    )


def write_files(directory: Path, mounts: Sequence[FileMount]) -> list[MountSpec]:
    """Write each file into ``directory`` (created 0700) and return read-only bind mounts."""
    from pycompose.engine.runtime.spec import MountSpec

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    specs = []
    for index, m in enumerate(mounts):
        path = directory / f"{m.kind}-{index}-{m.name}"
        if os.path.lexists(path):
            os.unlink(path)
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            view = memoryview(m.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode)  # after fchown, which clears set-id bits
            os.fsync(fd)
        finally:
            os.close(fd)
        specs.append(MountSpec("bind", m.target, str(path), read_only=True))
    return specs


def describe(path: Path) -> tuple[int, int, int]:
    """``(uid, gid, mode)`` of a written file (for checks and inspect)."""
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def source_data(
    kind: str, name: str, definition: Mapping[str, Any], environ: Mapping[str, str]
) -> bytes:
    """The content of a compose top-level secret/config: ``file`` (already made absolute by
    the loader), ``environment`` (a variable's value) or ``content`` (inline text)."""
    if definition.get("external"):
        raise InvalidArgument(
            f"{kind} {name}: external {kind}s need Swarm; use file, environment or content"
        )
    if definition.get("file"):
        path = str(definition["file"])
        try:
            with open(path, "rb") as fp:
                return fp.read(MAX_CONFIG + 1)
        except OSError as err:
            raise InvalidArgument(f"{kind} {name}: cannot read {path}: {err.strerror}") from err
    if definition.get("environment"):
        var = str(definition["environment"])
        if var not in environ:
            raise InvalidArgument(f"{kind} {name}: environment variable {var} is not set")
        return environ[var].encode()
    if "content" in definition:
        return str(definition["content"]).encode()
    raise InvalidArgument(f"{kind} {name}: needs file, environment or content")


def to_api(mount: FileMount) -> dict[str, Any]:
    """The create-request entry for ``mount`` (what a client sends)."""
    name_key = "SecretName" if mount.kind == "secret" else "ConfigName"
    return {
        name_key: mount.name,
        "File": {
            "Name": mount.target,
            "UID": str(mount.uid),
            "GID": str(mount.gid),
            "Mode": mount.mode,
        },
        "Data": base64.b64encode(mount.data).decode(),
    }
