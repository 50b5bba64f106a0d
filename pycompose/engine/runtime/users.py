"""Resolve a container's ``user`` from the image's own ``/etc/passwd`` and ``/etc/group``.

The rootfs belongs to the image, i.e. to whoever built it: ``/etc/passwd`` may be a symlink to
``/../../host/etc/shadow``. Files are therefore opened by walking the path one component at a
time from a directory fd of the rootfs with ``O_NOFOLLOW``, and symlinks are resolved the way
the container itself would see them (absolute targets and ``..`` stay inside the rootfs).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pycompose.engine.errors import InvalidArgument

MAX_ID = 2**32 - 2  # (uid_t)-1 is "no change" for setuid(2): never a valid id
_MAX_SYMLINKS = 40
_MAX_DB_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class ResolvedUser:
    """Numeric identity for the OCI ``process.user`` plus the home directory from passwd."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = field(default=())
    home: str = "/"


def open_in_root(root: Path, path: str, flags: int = os.O_RDONLY) -> int:
    """Open ``path`` as seen from inside ``root``, never leaving it; return an fd.

    Symlinks are followed relative to ``root`` (as a chroot would). Raises ``FileNotFoundError``
    when a component is missing and ``OSError(ELOOP)`` past 40 symlinks.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _walk(root_fd, path, flags)
    finally:
        os.close(root_fd)


def _walk(root_fd: int, path: str, flags: int) -> int:
    pending = [p for p in path.split("/") if p not in ("", ".")]
    stack: list[int] = []  # fds of the directories from the root down (excluding root)
    hops = 0
    try:
        while pending:
            name = pending.pop(0)
            cur = stack[-1] if stack else root_fd
            if name == "..":
                if stack:
                    os.close(stack.pop())
                continue
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink("", dir_fd=fd)
                os.close(fd)
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            if pending:
                stack.append(fd)
                continue
            # Reopen the final O_PATH fd for real I/O through /proc so no name is re-resolved.
            try:
                return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
            finally:
                os.close(fd)
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=stack[-1] if stack else root_fd)
    finally:
        for fd in stack:
            os.close(fd)


def read_in_root(root: Path, path: str) -> str | None:
    """Return a small text file from inside ``root``, or ``None`` when it does not exist."""
    try:
        fd = open_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise InvalidArgument(f"{path} in the image is not a regular file")
        data = f.read(_MAX_DB_SIZE + 1)
    if len(data) > _MAX_DB_SIZE:
        raise InvalidArgument(f"{path} in the image is larger than {_MAX_DB_SIZE} bytes")
    return data.decode("utf-8", "replace")


def _records(text: str | None, min_fields: int) -> Iterator[list[str]]:
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= min_fields:
            yield parts


def parse_id(text: str, what: str) -> int:
    """Parse a numeric uid/gid; overflow and negatives are refused."""
    if not text.isdigit() or not text.isascii():
        raise InvalidArgument(f"invalid {what} {text!r}: not a number")
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"invalid {what} {text}: larger than the maximum {MAX_ID}")
    return value


def _safe_id(text: str) -> int | None:
    try:
        return parse_id(text, "id")
    except InvalidArgument:
        return None


def resolve_user(rootfs: Path, user: str, group_add: tuple[str, ...] = ()) -> ResolvedUser:
    """Resolve Docker's ``user`` (``name``, ``uid``, ``name:group``, ``uid:gid``, ...).

    Names must exist in the image's passwd/group files; numbers need not (Docker's rules).
    Supplementary groups are the image groups listing the user, unless a group was given
    explicitly, plus ``group_add``.
    """
    spec_user, _, spec_group = (user or "0").partition(":")
    spec_user = spec_user or "0"
    passwd = read_in_root(rootfs, "/etc/passwd")
    group_text = read_in_root(rootfs, "/etc/group")
    uid, gid, name, home = _find_passwd(passwd, spec_user)
    if spec_group:
        gid = _find_group(group_text, spec_group)
    extra: list[int] = []
    if not spec_group and name is not None:
        for rec in _records(group_text, 4):
            members = [m for m in rec[3].split(",") if m]
            rgid = _safe_id(rec[2])
            if name in members and rgid is not None and rgid != gid and rgid not in extra:
                extra.append(rgid)
    for g in group_add:
        agid = _find_group(group_text, g)
        if agid not in extra:
            extra.append(agid)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(extra), home=home)


def _find_passwd(text: str | None, spec: str) -> tuple[int, int, str | None, str]:
    numeric = spec.isdigit()
    want = parse_id(spec, "uid") if numeric else None
    for rec in _records(text, 7):
        ruid, rgid = _safe_id(rec[2]), _safe_id(rec[3])
        if ruid is None or rgid is None:
            continue
        if (numeric and ruid == want) or (not numeric and rec[0] == spec):
            return ruid, rgid, rec[0], rec[5] or "/"
    if want is not None:
        return want, 0, None, "/"
    raise InvalidArgument(f"unable to find user {spec}: no matching entries in passwd file")


def _find_group(text: str | None, spec: str) -> int:
    if spec.isdigit():
        return parse_id(spec, "gid")
    for rec in _records(text, 3):
        rgid = _safe_id(rec[2])
        if rec[0] == spec and rgid is not None:
            return rgid
    raise InvalidArgument(f"unable to find group {spec}: no matching entries in group file")
