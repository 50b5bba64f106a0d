"""Pull throughput of a ~200 MB image from a loopback registry: pycompose against docker.

    .venv/bin/python bench/bench_pull.py [--size-mb 200] [--layers 4] [--runs 3] [--no-docker]

Builds an OCI image layout here (the busybox-static layer plus ``--layers`` layers of random,
incompressible data, gzip level 1, ``--size-mb`` in all), copies it with ``skopeo`` into
Debian's ``docker-registry`` on a free 127.0.0.1 port, then times ``pycompose pull`` against
an isolated pycompose engine and ``docker pull`` against an isolated dockerd (127.0.0.0/8 is
an insecure registry for dockerd by default, so plain http works). Every timed pull starts
from a cold store: the image is removed (``rmi``) after each pull, and before each one the
store is checked to hold no more than a few percent of the image above its starting size.
Pulls go in rounds (each tool once per round) so passing load falls on both alike; one
untimed round first warms the registry's page cache.

Throughput is the bytes the registry serves for the image (config and compressed layers)
over the wall-clock time of the CLI command, in MB/s (10^6 bytes). Needs root. Everything
(daemons, registry, layout, temp dirs) is removed at the end; a leftover makes it fail.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import pycompose_command
from bench.engines import (
    BenchUnavailable,
    docker_cli,
    docker_env,
    isolated_dockerd,
    loopback_registry,
    pycompose_engine,
    run_pycompose,
    store_bytes,
)
from pycompose.engine.images import manifest as mf
from tests.fixtures.images import PATH_ENV, busybox_layer_tar

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

MB = 1_000_000
CHUNK = 1 << 20
REPOSITORY = "bench/pull"
COLD_SLACK = 0.05  # a "cold" store holds at most this fraction of the image above baseline


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what it passes on to ``target``."""

    def __init__(self, target: BinaryIO | gzip.GzipFile) -> None:
        super().__init__()
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        """Yes: this stream is for writing only."""
        return True

    def write(self, data: ReadableBuffer) -> int:
        """Hash, count and pass on ``data``."""
        view = memoryview(data)
        self.hash.update(view)
        self.size += view.nbytes
        self.target.write(view)
        return view.nbytes


class _RandomReader:
    """``size`` bytes of os.urandom, read like a file (what tarfile copies from)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def _write_layer(blobs: Path, fill: Callable[[tarfile.TarFile], None]) -> tuple[mf.Descriptor,
                                                                                  str]:
    """Stream a gzip layer into ``blobs``; returns its descriptor and diff id."""
    tmp = blobs / f"partial-{os.getpid()}"
    with open(tmp, "wb") as out:
        compressed = _HashingWriter(out)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=1, mtime=0,
                           filename="") as zipped:
            raw = _HashingWriter(zipped)
            with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                fill(tar)
    digest = compressed.hash.hexdigest()
    tmp.rename(blobs / digest)
    desc = mf.Descriptor(mf.OCI_LAYER_GZIP, f"sha256:{digest}", compressed.size)
    return desc, f"sha256:{raw.hash.hexdigest()}"


def _random_file(index: int, size: int) -> Callable[[tarfile.TarFile], None]:
    def fill(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(f"data/layer{index}.bin")
        info.size, info.mode, info.mtime = size, 0o644, 0
        tar.addfile(info, _RandomReader(size))

    return fill


def _busybox(tar: tarfile.TarFile) -> None:
    # Re-emit the fixture's deterministic busybox layer member by member.
    with tarfile.open(fileobj=io.BytesIO(busybox_layer_tar())) as src:
        for member in src:
            tar.addfile(member, src.extractfile(member) if member.isfile() else None)


def _put_json(blobs: Path, doc: object) -> tuple[str, int]:
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def build_layout(layout: Path, size_mb: int, layers: int, tag: str) -> int:
    """Write the benchmark image as an OCI layout; returns the bytes a pull transfers."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    fills = [_busybox] + [_random_file(i, size_mb * MB // layers) for i in range(layers)]
    descs, diff_ids = [], []
    for fill in fills:
        desc, diff_id = _write_layer(blobs, fill)
        descs.append(desc)
        diff_ids.append(diff_id)
    plat = mf.host_platform()
    config = {"architecture": plat.architecture, "os": plat.os,
              "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_digest, config_size = _put_json(blobs, config)
    manifest = mf.manifest_json(mf.Descriptor(mf.OCI_CONFIG, config_digest, config_size), descs)
    man_digest = hashlib.sha256(manifest).hexdigest()
    (blobs / man_digest).write_bytes(manifest)
    index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [{
        "mediaType": mf.OCI_MANIFEST, "digest": f"sha256:{man_digest}", "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return config_size + sum(d.size for d in descs)


def push(layout: Path, tag: str, ref: str) -> None:
    """Copy the layout into the registry with skopeo (independent of our push code)."""
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:{tag}", f"docker://{ref}"],
                   check=True, capture_output=True, timeout=900)


@dataclass(frozen=True)
class Puller:
    """How one tool pulls, forgets the image, and where its store lives."""

    label: str
    argv: list[str]
    env: dict[str, str]
    remove: list[list[str]]
    store: Path


@dataclass(frozen=True)
class PullResult:
    """Seconds per timed pull of one tool."""

    label: str
    seconds: list[float]

    def mbps(self, size: int) -> float:
        """Throughput at the median time."""
        return size / MB / statistics.median(self.seconds)


def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=900, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err}")


def cold_pull(puller: Puller, size: int, baseline: int) -> float:
    """Check the store is cold, pull once, check it grew, remove the image; seconds taken."""
    extra = store_bytes(puller.store) - baseline
    if extra > COLD_SLACK * size:
        raise RuntimeError(f"{puller.label}: store still holds {extra / MB:.0f} MB "
                           "after rmi: not a cold pull")
    start = time.perf_counter()
    _run(puller.argv, puller.env)
    elapsed = time.perf_counter() - start
    if store_bytes(puller.store) - baseline < size / 2:
        raise RuntimeError(f"{puller.label}: the store did not grow: nothing was pulled")
    for argv in puller.remove:
        _run(argv, puller.env)
    return elapsed


def time_pulls(pullers: Sequence[Puller], size: int, runs: int,
               warmup: int) -> list[PullResult]:
    """Cold pulls in rounds (each tool once per round); the first ``warmup`` rounds untimed."""
    baselines = [store_bytes(p.store) for p in pullers]
    seconds: list[list[float]] = [[] for _ in pullers]
    for index in range(warmup + runs):
        for slot, puller in enumerate(pullers):
            elapsed = cold_pull(puller, size, baselines[slot])
            if index >= warmup:
                seconds[slot].append(elapsed)
    return [PullResult(p.label, s) for p, s in zip(pullers, seconds, strict=True)]


def render(results: Sequence[PullResult], size: int, skipped: Sequence[str]) -> str:
    """A markdown table: seconds, MB/s, ratio to docker."""
    docker = next((r for r in results if r.label.startswith("docker")), None)
    lines = ["| command | median s | min s | MB/s (median) | MB/s (best) | vs docker |",
             "|---|---|---|---|---|---|"]
    for r in results:
        vs = f"{r.mbps(size) / docker.mbps(size):.2f}x" if docker else "n/a"
        cells = [r.label, f"{statistics.median(r.seconds):.2f}", f"{min(r.seconds):.2f}",
                 f"{r.mbps(size):.1f}", f"{size / MB / min(r.seconds):.1f}",
                 "reference" if r is docker else vs]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"\n{line}" for line in skipped]
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> str:
    """Build and push the image, pull it with each tool, stop and remove everything."""
    skipped: list[str] = []
    tag = "latest"
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pcbench-pull-")))
        size = build_layout(tmp / "layout", args.size_mb, args.layers, tag)
        registry = stack.enter_context(loopback_registry())
        ref = f"{registry.host}/{REPOSITORY}:{tag}"
        push(tmp / "layout", tag, ref)
        shutil.rmtree(tmp / "layout")
        print(f"image {ref}: {size / MB:.1f} MB in {args.layers + 1} layers", file=sys.stderr)
        engine = stack.enter_context(pycompose_engine())
        pullers = [Puller("pycompose pull", [*pycompose_command(), "pull", ref], engine.env(),
                          [[*pycompose_command(), "rmi", ref]], engine.config.root)]
        if args.docker:
            try:
                dockerd = stack.enter_context(isolated_dockerd())
            except BenchUnavailable as err:
                skipped.append(f"docker: not measured ({err})")
            else:
                env = docker_env(tmp / "docker-config")
                pullers.append(Puller("docker pull", docker_cli(dockerd.host, "pull", ref), env,
                                      [docker_cli(dockerd.host, "rmi", ref)],
                                      dockerd.tmp / "root"))
        results = time_pulls(pullers, size, args.runs, args.warmup)
        run_pycompose(engine, "images")  # our engine still answers after the runs
    return render(results, size, skipped)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run the benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="random data in all layers")
    parser.add_argument("--layers", type=int, default=4, help="layers of random data")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-docker", dest="docker", action="store_false",
                        help="skip the Docker daemon even where it is installed")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_pull.py needs root (the engines unpack layers as root)", file=sys.stderr)
        return 2
    print(render_header(args))
    print(measure(args))
    return 0


def render_header(args: argparse.Namespace) -> str:
    """One line saying what is measured."""
    return (f"cold pulls: {args.runs} timed after {args.warmup} warm-up per tool; "
            f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    raise SystemExit(main())
