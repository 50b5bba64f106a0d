"""DNS lookups through 127.0.0.11 from inside a network namespace (root only).

    python bench/bench_dns.py [--lookups N] [--rounds R] [--docker-host unix:///path/docker.sock]

Our side: a fresh namespace (``unshare --net=<file>``), a ``DnsService`` serving it with
a few names, and a client started inside it with ``nsenter`` and ``unshare --mount`` (its
own /etc/resolv.conf saying ``nameserver 127.0.0.11``, ``options ndots:0``) that times
glibc's getaddrinfo (AF_UNSPEC: an A and an AAAA query; AF_INET: one A query) and plain
UDP queries on one socket. With ``--docker-host``, the same client runs in the network
namespace of a container on a user-defined Docker network, against Docker's resolver
(needs a ``busybox`` image on that daemon). Prints a markdown table of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycompose.netns.dns import DnsService

CLIENT = r"""
import json, os, socket, struct, sys, time
name, count = sys.argv[1], int(sys.argv[2])
def per_lookup(family):
    for _ in range(min(50, count)):
        socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM)
    start = time.perf_counter()
    for _ in range(count):
        socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM)
    return (time.perf_counter() - start) / count * 1e6
def raw_udp():
    labels = b"".join(bytes((len(p),)) + p.encode() for p in name.split("."))
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.11", 53))
        s.settimeout(2)
        for _ in range(min(50, count)):
            s.send(query); s.recv(4096)
        start = time.perf_counter()
        for _ in range(count):
            s.send(query); s.recv(4096)
        return count / (time.perf_counter() - start)
print(json.dumps({
    "unspec_us": per_lookup(socket.AF_UNSPEC),
    "inet_us": per_lookup(socket.AF_INET),
    "udp_qps": raw_udp(),
    "answer": sorted({i[4][0] for i in socket.getaddrinfo(name, 80, 0, socket.SOCK_STREAM)}),
}))
"""


async def run_client(netns: str, resolv: Path, name: str, lookups: int) -> dict[str, object]:
    """Run CLIENT inside ``netns`` with ``resolv`` bind-mounted as /etc/resolv.conf."""
    script = f'mount --bind {resolv} /etc/resolv.conf && exec {sys.executable} -c "$0" "$@"'
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net={netns}", "unshare", "--mount", "sh", "-c", script,
        CLIENT, name, str(lookups),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"client failed: {err.decode()}")
    result: dict[str, object] = json.loads(out)
    return result


def summarise(label: str, results: list[dict[str, object]]) -> str:
    def median(key: str) -> float:
        return statistics.median(float(str(result[key])) for result in results)

    answer = results[0]["answer"]
    shown = " ".join(map(str, answer)) if isinstance(answer, list) else str(answer)
    return (
        f"| {label} | {median('unspec_us'):.0f} | {median('inet_us'):.0f} | "
        f"{median('udp_qps'):,.0f} | {shown} |"
    )


async def bench_ours(tmp: Path, resolv: Path, lookups: int, rounds: int) -> list[dict[str, object]]:
    netns = tmp / "netns"
    netns.touch()
    subprocess.run(["unshare", f"--net={netns}", "true"], check=True)
    try:
        async with DnsService(upstreams=[]) as service:
            for index in range(20):  # a project-sized table, not a single entry
                cid = f"{index:064x}"
                # IPv4 only, like a default Docker network: same answers on both sides.
                service.records.set(
                    cid, f"proj-svc{index}-1", cid[:12], "proj_default",
                    f"10.77.0.{index + 2}", service=f"svc{index}",
                )  # fmt: skip
            await service.add_endpoint("bench", str(netns), frozenset({"proj_default"}))
            return [await run_client(str(netns), resolv, "svc7", lookups) for _ in range(rounds)]
    finally:
        subprocess.run(["umount", str(netns)], check=False)
        netns.unlink()


def docker(host: str, *args: str) -> str:
    out = subprocess.run(
        [shutil.which("docker") or "docker", "-H", host, *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


async def bench_docker(
    host: str, resolv: Path, lookups: int, rounds: int
) -> list[dict[str, object]]:
    tag = f"dnsbench{os.getpid()}"
    docker(host, "network", "create", tag)
    try:
        docker(host, "run", "-d", "--name", f"{tag}-peer", "--network", tag,
               "--network-alias", "svc7", "busybox", "sleep", "600")  # fmt: skip
        docker(host, "run", "-d", "--name", f"{tag}-client", "--network", tag,
               "busybox", "sleep", "600")  # fmt: skip
        pid = docker(host, "inspect", "-f", "{{.State.Pid}}", f"{tag}-client")
        netns = f"/proc/{pid}/ns/net"
        return [await run_client(netns, resolv, "svc7", lookups) for _ in range(rounds)]
    finally:
        subprocess.run(
            ["docker", "-H", host, "rm", "-f", f"{tag}-peer", f"{tag}-client"],
            check=False, capture_output=True,
        )  # fmt: skip
        subprocess.run(["docker", "-H", host, "network", "rm", tag], check=False,
                       capture_output=True)  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--docker-host", help="also measure Docker's resolver on this daemon")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_dns needs root (network namespaces)", file=sys.stderr)
        return 2
    rows = [
        "| resolver | getaddrinfo AF_UNSPEC us | getaddrinfo AF_INET us | UDP queries/s | answer |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as name:
        tmp = Path(name)
        resolv = tmp / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.11\noptions ndots:0\n")
        ours = await bench_ours(tmp, resolv, args.lookups, args.rounds)
        rows.append(summarise("pycompose 127.0.0.11", ours))
        if args.docker_host:
            theirs = await bench_docker(args.docker_host, resolv, args.lookups, args.rounds)
            rows.append(summarise("Docker 127.0.0.11", theirs))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
