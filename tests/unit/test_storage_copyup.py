"""Copy-up's extended attributes on a plain directory tree (user xattrs need no root;
the trusted.* namespace does, so that test is marked root)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pycompose.storage import copyup


def _copy(src_root: Path, dst: Path) -> None:
    fd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert copyup.copy_up(str(src_root), "/img", fd)
    finally:
        os.close(fd)


def test_user_xattrs_of_files_and_dirs_are_copied(tmp_path: Path) -> None:
    img = tmp_path / "root" / "img"
    (img / "sub").mkdir(parents=True)
    (img / "sub" / "f").write_text("data")
    os.symlink("sub/f", img / "link")
    os.setxattr(img, "user.top", b"1")
    os.setxattr(img / "sub", "user.dir", b"2")
    os.setxattr(img / "sub" / "f", "user.file", b"\x00\xff")
    dst = tmp_path / "vol"
    dst.mkdir()
    _copy(tmp_path / "root", dst)
    assert os.getxattr(dst, "user.top") == b"1"
    assert os.getxattr(dst / "sub", "user.dir") == b"2"
    assert os.getxattr(dst / "sub" / "f", "user.file") == b"\x00\xff"
    assert os.readlink(dst / "link") == "sub/f"
    assert os.listxattr(dst / "link", follow_symlinks=False) == []


def test_an_xattr_the_fs_refuses_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.symlink("nowhere", tmp_path / "link")
    with caplog.at_level(logging.WARNING, logger="pycompose.storage.copyup"):
        # user.* on a symlink: the kernel refuses (EPERM).
        copyup._set_xattrs(str(tmp_path / "link"), [("user.x", b"1")], "link")
    assert "link: extended attribute user.x not copied" in caplog.text


@pytest.mark.root
def test_trusted_overlay_xattrs_are_never_copied(tmp_path: Path) -> None:
    img = tmp_path / "root" / "img"
    img.mkdir(parents=True)
    os.setxattr(img, "trusted.overlay.opaque", b"y")
    os.setxattr(img, "trusted.other", b"kept")
    dst = tmp_path / "vol"
    dst.mkdir()
    _copy(tmp_path / "root", dst)
    assert os.listxattr(dst) == ["trusted.other"]
