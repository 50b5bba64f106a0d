"""Sequential write and read throughput: host dir vs named volume, staged bind mount, overlay.

Needs root (it mounts). Everything lives in one temp dir on the same filesystem as the state
root would be, and is unmounted and removed at the end. Each run writes ``--size`` MiB in
1 MiB blocks and fsyncs (write figure), evicts the file's pages with ``posix_fadvise``
(no system-wide cache drop, other work shares the machine), then reads it back (read
figure). The median of ``--runs`` runs is printed with its ratio to the host.

Usage: ``python bench/bench_storage.py --size 256 --runs 5 [--dir /var/tmp]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pycompose.storage.mounts import resolve_mounts
from pycompose.storage.overlay import KernelMounter, mount_rootfs, unmount_rootfs
from pycompose.storage.safepath import KernelBinder
from pycompose.storage.stage import MountStager
from pycompose.storage.volumes import VolumeStore

BLOCK = 1 << 20


def write_file(path: Path, size_mb: int) -> float:
    """Seconds to write and fsync ``size_mb`` MiB."""
    block = os.urandom(BLOCK)
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(size_mb):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache so the read hits the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_file(path: Path) -> float:
    """Seconds to read the file back."""
    start = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, BLOCK):
            pass
    finally:
        os.close(fd)
    return time.perf_counter() - start


def measure(dirs: dict[str, Path], size_mb: int, runs: int) -> dict[str, tuple[float, float]]:
    """Median write and read throughput in MB/s per target; targets take turns in each run
    (after one unrecorded warm-up round) so that drift on a shared machine hits all alike."""
    writes: dict[str, list[float]] = {k: [] for k in dirs}
    reads: dict[str, list[float]] = {k: [] for k in dirs}
    for run in range(runs + 1):
        for label, directory in dirs.items():
            target = directory / "bench.bin"
            w = size_mb / write_file(target, size_mb)
            evict(target)
            r = size_mb / read_file(target)
            target.unlink()
            if run:
                writes[label].append(w)
                reads[label].append(r)
    return {k: (statistics.median(writes[k]), statistics.median(reads[k])) for k in dirs}


@contextmanager
def targets(base: Path) -> Iterator[dict[str, Path]]:
    """The directories to measure, set up and torn down."""
    binder = KernelBinder()
    volumes = VolumeStore(base / "volumes", binder)
    stager = MountStager(volumes, binder, base / "mounts")
    host = base / "host"
    host.mkdir()
    bind_src = base / "bindsrc"
    bind_src.mkdir()
    mounts = resolve_mounts(
        {"Binds": [f"{bind_src}:/b", "benchvol:/v"]}, None, container_id="bench", volumes=volumes
    )
    lower = base / "lower"
    lower.mkdir()
    mounter = KernelMounter()
    with ExitStack() as stack:
        specs = {s.target: Path(s.source) for s in stager.prepare("bench", mounts)}
        stack.callback(stager.release, "bench", mounts)
        dirs = mount_rootfs(mounter, [str(lower)], base / "overlay")
        stack.callback(unmount_rootfs, mounter, base / "overlay")
        yield {
            "host dir": host,
            "named volume (data dir)": volumes.data_dir("benchvol"),
            "named volume (staged mount)": specs["/v"],
            "bind mount (staged)": specs["/b"],
            "overlay rootfs": dirs.merged,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="MiB per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp", help="where to make the temp dir")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pcbench-", dir=args.dir))
    rows: list[tuple[str, float, float]] = []
    try:
        with targets(base) as dirs:
            rows = [(k, *v) for k, v in measure(dirs, args.size, args.runs).items()]
    finally:
        shutil.rmtree(base)
    host_w, host_r = rows[0][1], rows[0][2]
    pct: Callable[[float, float], str] = lambda v, ref: f"{100 * v / ref:5.1f}%"  # noqa: E731
    print(f"{args.size} MiB x {args.runs} runs in {args.dir} (median MB/s, % of host)")
    print(f"{'target':30} {'write':>9} {'':>7} {'read':>9} {'':>7}")
    for label, w, r in rows:
        print(f"{label:30} {w:9.1f} {pct(w, host_w):>7} {r:9.1f} {pct(r, host_r):>7}")


if __name__ == "__main__":
    main()
