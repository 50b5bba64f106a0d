"""Copy-up keeps extended attributes: a named volume first mounted over an image directory
gets the image files' ``user.*`` xattrs and file capabilities (``security.capability``),
also on a setuid file whose mode the chown would otherwise disturb.

The image is busybox plus a layer built here whose tar carries the xattrs as PAX
``SCHILY.xattr.*`` headers, as docker and buildkit write them.
"""

from __future__ import annotations

import io
import os
import pathlib
import struct
import tarfile
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.docker_cli import ok, run_docker
from tests.fixtures.engine import EngineProcess
from tests.fixtures.storage import cleanup, data_dir, load_volume_image

pytestmark = pytest.mark.root

CAP_NET_BIND_SERVICE = 10
# struct vfs_cap_data, revision 2, effective bit set, permitted = CAP_NET_BIND_SERVICE.
CAPABILITY = struct.pack("<IIIII", 0x02000000 | 1, 1 << CAP_NET_BIND_SERVICE, 0, 0, 0)


@pytest.fixture
def eng(module_engine: EngineProcess) -> Iterator[EngineProcess]:
    yield module_engine
    cleanup(module_engine)


def _member(
    name: str, kind: bytes, mode: int, data: bytes = b"", xattrs: dict[str, bytes] | None = None
) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, len(data)
    info.uid, info.gid, info.mtime = 1000, 1000, int(time.time()) - 3600
    info.pax_headers = {
        f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in (xattrs or {}).items()
    }
    return info, io.BytesIO(data) if data else None


def xattr_layer() -> bytes:
    """/opt/tools with a user xattr, a capable binary and a setuid capable binary."""
    buf = io.BytesIO()
    members = [
        _member("opt", tarfile.DIRTYPE, 0o755),
        _member("opt/tools", tarfile.DIRTYPE, 0o750, xattrs={"user.kind": b"toolbox"}),
        _member(
            "opt/tools/ping",
            tarfile.REGTYPE,
            0o755,
            b"#!/bin/sh\necho ping\n",
            xattrs={"user.origin": b"test\x00bytes", "security.capability": CAPABILITY},
        ),
        _member(
            "opt/tools/sudoish",
            tarfile.REGTYPE,
            0o4755,
            b"#!/bin/sh\n",
            xattrs={"security.capability": CAPABILITY},
        ),
        _member("opt/tools/plain", tarfile.REGTYPE, 0o644, b"plain\n"),
    ]
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        for info, data in members:
            tf.addfile(info, data)
    return buf.getvalue()


def test_named_volume_copy_up_keeps_xattrs_and_capabilities(
    eng: EngineProcess, busybox_layout: pathlib.Path
) -> None:
    load_volume_image(eng, busybox_layout, "xattrs:1", [], {}, layer_tar=xattr_layer())
    ok(eng, "run", "--rm", "-v", "toolvol:/opt/tools", "xattrs:1", "true")
    vol = data_dir(eng, "toolvol")

    assert os.getxattr(vol, "user.kind") == b"toolbox"
    assert os.stat(vol).st_mode & 0o7777 == 0o750
    ping = vol / "ping"
    assert os.getxattr(ping, "user.origin") == b"test\x00bytes"
    assert os.getxattr(ping, "security.capability") == CAPABILITY
    assert (os.stat(ping).st_uid, os.stat(ping).st_gid) == (1000, 1000)
    sudoish = vol / "sudoish"
    assert os.getxattr(sudoish, "security.capability") == CAPABILITY
    assert os.stat(sudoish).st_mode & 0o7777 == 0o4755
    assert os.listxattr(vol / "plain") == []
    assert not [
        a for p in (vol, ping, sudoish) for a in os.listxattr(p) if a.startswith("trusted.overlay.")
    ]
    # The filled volume is what a container sees at /opt/tools.
    assert (
        ok(eng, "run", "--rm", "-v", "toolvol:/opt/tools", "xattrs:1", "cat", "/opt/tools/ping")
        == "#!/bin/sh\necho ping\n"
    )
    assert run_docker(eng, "volume", "rm", "toolvol").returncode == 0
