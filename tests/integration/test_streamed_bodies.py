"""Large request bodies go from disk to the engine without sitting in the CLI's memory.

``image load -i`` of a ~200 MB image tarball and ``cp`` of a ~200 MB file (and a directory
holding it) into a container are run as child processes whose peak RSS (``ru_maxrss`` from
``os.wait4``) must stay far below the body size; the data must arrive intact. The docker
CLI against the same engine must still load and copy.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator

import pytest

from pycompose.engine.images import manifest as mf
from tests.fixtures.docker_cli import clear_containers, ok
from tests.fixtures.engine import REPO, EngineProcess, busybox_engine
from tests.fixtures.images import append_layer, layout_tarball

pytestmark = pytest.mark.root

BIG = 200 * 1024 * 1024
RSS_LIMIT = 100 * 1024 * 1024


@pytest.fixture(scope="module")
def engine(busybox_layout: pathlib.Path) -> Iterator[EngineProcess]:
    with busybox_engine(busybox_layout) as eng:
        yield eng


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pathlib.Path, str]]:
    """A ~200 MB file of varied bytes and its sha256."""
    path = tmp_path_factory.mktemp("bigfile") / "big.bin"
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as fp:
        for i in range(BIG >> 20):
            piece = i.to_bytes(8, "big") + block[8:]
            fp.write(piece)
            digest.update(piece)
    yield path, digest.hexdigest()
    path.unlink()


@pytest.fixture
def clean(engine: EngineProcess) -> Iterator[EngineProcess]:
    yield engine
    clear_containers(engine)


def _blob_from_file(layout: pathlib.Path, src: pathlib.Path) -> mf.Descriptor:
    digest = hashlib.sha256()
    with open(src, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    dest = layout / "blobs" / "sha256" / digest.hexdigest()
    os.replace(src, dest)
    return mf.Descriptor("", "sha256:" + digest.hexdigest(), dest.stat().st_size)


def big_image_tarball(
    busybox: pathlib.Path, big: pathlib.Path, out: pathlib.Path, reference: str
) -> None:
    """busybox plus an uncompressed layer holding ``big`` as /big.bin, as a load tarball."""
    layout = out.parent / "layout"
    shutil.copytree(busybox, layout)
    layer_path = out.parent / "layer.tar"
    with tarfile.open(layer_path, "w") as tf:
        tf.add(big, arcname="big.bin")
    layer = _blob_from_file(layout, layer_path)
    append_layer(layout, layer, reference, "ADD big.bin /")
    with open(out, "wb") as fp:
        layout_tarball(layout, fp)
    shutil.rmtree(layout)


# A child's ru_maxrss starts at its parent's RSS when it was forked (the pre-exec image
# counts): so the CLI is forked by this small launcher, not by pytest (hundreds of MiB after
# a long session), and the launcher reports what wait4 says of it.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "pycompose.cli.main", *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss * 1024}")
"""


def pc_measured(
    engine: EngineProcess,
    *args: str,
    stdin: pathlib.Path | None = None,
) -> tuple[int, bytes, int]:
    """Run ``pycompose ARGS``; returns (exit status, stdout+stderr, peak RSS in bytes)."""
    out_path = engine.tmp / f"cli-out-{time.monotonic_ns()}"
    result_path = out_path.with_suffix(".result")
    env = {**engine.env(), "PYTHONPATH": str(REPO)}
    with open(out_path, "wb") as out, open(stdin or os.devnull, "rb") as inp:
        subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(result_path), *args],
            stdin=inp,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
        )
    output = out_path.read_bytes()
    status, rss = (int(x) for x in result_path.read_text().split())
    out_path.unlink()
    result_path.unlink()
    return status, output, rss


def test_image_load_of_a_200mb_tarball_streams(
    engine: EngineProcess,
    big_file: tuple[pathlib.Path, str],
    busybox_layout: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    big, digest = big_file
    tarball = tmp_path / "big-image.tar"
    big_image_tarball(busybox_layout, big, tarball, "big/image:1")
    assert tarball.stat().st_size > BIG

    status, output, rss = pc_measured(engine, "image", "load", "-i", str(tarball))
    assert (status, output) == (0, b"Loaded image: big/image:1\n")
    assert rss < RSS_LIMIT, f"image load peaked at {rss >> 20} MiB"
    # From stdin (a file: sent with its length), then from a pipe (chunked).
    ok(engine, "rmi", "big/image:1")
    status, output, rss = pc_measured(engine, "image", "load", stdin=tarball)
    assert (status, output, rss < RSS_LIMIT) == (0, b"Loaded image: big/image:1\n", True)
    ok(engine, "rmi", "big/image:1")
    piped = subprocess.run(
        [
            "sh",
            "-c",
            'cat "$1" | "$2" -m pycompose.cli.main image load',
            "sh",
            str(tarball),
            sys.executable,
        ],
        capture_output=True,
        env={**engine.env(), "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert (piped.stdout, piped.stderr) == (b"Loaded image: big/image:1\n", b"")
    sums = ok(engine, "run", "--rm", "big/image:1", "sha256sum", "/big.bin")
    assert sums.split()[0] == digest

    ok(engine, "rmi", "big/image:1")  # the docker CLI loads it too
    assert ok(engine, "load", "-i", str(tarball)) == "Loaded image: big/image:1\n"
    ok(engine, "rmi", "big/image:1")


def test_cp_of_a_200mb_file_and_directory_streams(
    clean: EngineProcess, big_file: tuple[pathlib.Path, str], tmp_path: pathlib.Path
) -> None:
    big, digest = big_file
    ok(clean, "run", "-d", "--name", "sink", "busybox", "sleep", "300")
    status, output, rss = pc_measured(clean, "cp", str(big), "sink:/tmp/")
    assert (status, output) == (0, b"")
    assert rss < RSS_LIMIT, f"cp of a file peaked at {rss >> 20} MiB"

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "small.txt").write_text("small\n")
    os.link(big, tree / "sub" / "big.bin")
    status, output, rss = pc_measured(clean, "cp", str(tree), "sink:/")
    assert (status, output) == (0, b"")
    assert rss < RSS_LIMIT, f"cp of a directory peaked at {rss >> 20} MiB"

    ok(clean, "cp", str(big), "sink:/tmp/via-docker.bin")  # the docker CLI
    sums = ok(
        clean,
        "exec",
        "sink",
        "sha256sum",
        "/tmp/big.bin",
        "/tree/sub/big.bin",
        "/tmp/via-docker.bin",
    ).split()
    assert sums[0::2] == [digest] * 3
    assert ok(clean, "exec", "sink", "cat", "/tree/sub/small.txt") == "small\n"


def test_cp_to_a_missing_container_is_one_clean_error(
    engine: EngineProcess,
    big_file: tuple[pathlib.Path, str],
) -> None:
    status, output, _ = pc_measured(engine, "cp", str(big_file[0]), "nosuch:/tmp/")
    assert status == 1
    assert output.decode().strip().splitlines() == [
        "Error response from daemon: No such container: nosuch"
    ]
