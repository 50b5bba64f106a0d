"""User and group resolution inside an image rootfs, without leaving it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.runtime.users import MAX_ID, ResolvedUser, open_in_root, resolve_user

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
    "# comment\nbad:x:zz:1:::\n"
)
GROUP = "root:x:0:\napp:x:1001:\nstaff:x:50:app,other\nwheel:x:10:app\nweb:x:33:\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def test_default_is_root(rootfs: Path) -> None:
    assert resolve_user(rootfs, "") == ResolvedUser(0, 0, (), "/root")


def test_name_gives_primary_and_supplementary_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "app") == ResolvedUser(1000, 1001, (50, 10), "/home/app")


def test_explicit_group_replaces_membership_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "app:web") == ResolvedUser(1000, 33, (), "/home/app")
    assert resolve_user(rootfs, "1000:7") == ResolvedUser(1000, 7, (), "/home/app")


def test_numeric_uid_not_in_passwd_gets_gid_0(rootfs: Path) -> None:
    assert resolve_user(rootfs, "4242") == ResolvedUser(4242, 0, (), "/")


def test_group_add(rootfs: Path) -> None:
    assert resolve_user(rootfs, "root", ("web", "99")).additional_gids == (33, 99)


def test_unknown_names_are_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        resolve_user(rootfs, "nobody")
    with pytest.raises(InvalidArgument, match="unable to find group nogroup"):
        resolve_user(rootfs, "app:nogroup")


@pytest.mark.parametrize("spec", [str(MAX_ID + 1), f"0:{MAX_ID + 1}", str(2**64)])
def test_id_overflow_is_refused(rootfs: Path, spec: str) -> None:
    with pytest.raises(InvalidArgument, match="maximum"):
        resolve_user(rootfs, spec)


def test_largest_id_is_accepted(rootfs: Path) -> None:
    assert resolve_user(rootfs, f"{MAX_ID}:{MAX_ID}").uid == MAX_ID


def test_missing_files_allow_numeric_ids_only(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    assert resolve_user(root, "5:6") == ResolvedUser(5, 6, (), "/")
    with pytest.raises(InvalidArgument):
        resolve_user(root, "app")


def test_symlinked_passwd_cannot_escape_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    depth = "/".join([".."] * 8)
    os.symlink(f"{depth}/host-etc/passwd", root / "etc" / "passwd")  # relative escape
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        resolve_user(root, "evil")
    os.unlink(root / "etc" / "passwd")
    os.symlink(str(outside / "passwd"), root / "etc" / "passwd")  # absolute escape
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        resolve_user(root, "evil")


def test_symlinks_resolve_inside_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "usr" / "etc").mkdir(parents=True)
    (root / "usr" / "etc" / "passwd").write_text(PASSWD)
    os.symlink("/usr/etc", root / "etc")  # absolute target = inside the rootfs
    assert resolve_user(root, "app").uid == 1000


def test_symlink_loop_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("passwd", root / "etc" / "passwd")
    with pytest.raises(OSError, match="symbolic links"):
        open_in_root(root, "/etc/passwd")


def test_passwd_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc" / "passwd").mkdir(parents=True)
    with pytest.raises((InvalidArgument, IsADirectoryError)):
        resolve_user(root, "app")
