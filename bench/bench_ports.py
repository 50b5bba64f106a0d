"""Published-port throughput: through 127.0.0.1 and the host's address vs. direct to the netns.

Sets up an isolated network with our own NetworkManager (temp root, random bridge prefix, a free
10.x pool), one namespace running a TCP receiver, publishes its port, and measures TCP
throughput from the host to (1) the namespace's own address, (2) 127.0.0.1:<published>,
(3) <host address>:<published>. The kernel forwards all three (nftables DNAT), so (2) and (3)
should be within a few percent of (1).

Tool: iperf3 (Debian's ``iperf3``) when installed, else a Python sender/receiver pair that
moves 1 MiB writes for the given duration. The report says which one was used.

    sudo python3 bench/bench_ports.py [--seconds 5] [--runs 3] [--tool iperf3|python]

Needs root. Everything it creates (veth, bridge, netns file, nft table) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pycompose.engine.config import EngineConfig
from pycompose.netns.kernel import LinuxKernel
from pycompose.netns.manager import NetworkManager
from pycompose.netns.networks import NetworkSpec
from pycompose.netns.ports import PortBinding

PORT = 5201
RECEIVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8); print("ready", flush=True)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept(); total = 0
    while (n := c.recv_into(buf)):
        total += n
    c.sendall(str(total).encode()); c.close()
"""


def host_address() -> str:
    """The host's own address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.123", 9))
        return str(s.getsockname()[0])


def free_pool() -> str:
    """A 10.x.0.0/16 no host route overlaps."""
    import ipaddress

    taken = [ipaddress.ip_network(r) for r in LinuxKernel().routed_networks() if ":" not in r]
    for second in range(200, 250):
        net = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(net.overlaps(t) for t in taken if t.prefixlen):
            return str(net)
    raise SystemExit("no free 10.x.0.0/16 for the benchmark")


def python_send(host: str, port: int, seconds: float) -> float:
    """MB/s of a single TCP stream of 1 MiB writes for ``seconds``."""
    chunk = b"\0" * (1 << 20)
    with socket.create_connection((host, port), timeout=10) as s:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        total = int(s.recv(64))
        elapsed = time.perf_counter() - start
    return total / elapsed / 1e6


def iperf3_send(host: str, port: int, seconds: float) -> float:
    """MB/s iperf3 reports as received over one TCP stream."""
    out = subprocess.run(
        ["iperf3", "-J", "-c", host, "-p", str(port), "-t", str(seconds)],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    )  # fmt: skip
    return float(json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]) / 8e6


def run(seconds: float, runs: int, tool: str) -> dict[str, list[float]]:
    """Set up, measure each path ``runs`` times (interleaved), tear down."""
    tmp = Path(tempfile.mkdtemp(prefix="pcbench-"))
    config = EngineConfig.load(root=tmp / "root", runtime_dir=tmp / "run", bridge_prefix="bnp",
                               subnet_pool=f"{free_pool()}:24", environ={})  # fmt: skip
    manager = NetworkManager(config, LinuxKernel())
    server: subprocess.Popen[bytes] | None = None
    try:
        manager.create(NetworkSpec(name="bench"))
        ns = manager.create_netns("bench")
        ep = manager.attach("bench", ns, "bench")
        if tool == "iperf3":
            argv = ["iperf3", "-s", "-p", str(PORT)]
        else:
            argv = [sys.executable, "-c", RECEIVER, str(PORT)]
        server = subprocess.Popen(["nsenter", f"--net={ns}", *argv], stdout=subprocess.PIPE)
        if tool == "python":
            assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        else:
            time.sleep(0.5)
        (bound,) = manager.publish("bench", [PortBinding(PORT, "tcp")])
        send: Callable[[str, int, float], float] = iperf3_send if tool == "iperf3" else python_send
        paths = {"direct": (ep.ipv4, PORT), "127.0.0.1": ("127.0.0.1", bound.host_port),
                 "host address": (host_address(), bound.host_port)}  # fmt: skip
        results: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(runs):
            for label, (host, port) in paths.items():
                results[label].append(send(host, port, seconds))
        return results
    finally:
        if server is not None:
            server.kill()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()
        manager.unpublish("bench")
        manager.detach_all("bench")
        manager.remove_netns("bench")
        manager.delete("bench")
        manager.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tool", choices=("iperf3", "python"),
                        default="iperf3" if shutil.which("iperf3") else "python")  # fmt: skip
    args = parser.parse_args()
    results = run(args.seconds, args.runs, args.tool)
    direct = statistics.median(results["direct"])
    print(f"tool: {args.tool}, {args.runs} runs of {args.seconds:g} s, single TCP stream")
    for label, values in results.items():
        med = statistics.median(values)
        print(f"{label:>14}: median {med:8.0f} MB/s  ({med / direct:6.1%} of direct)"
              f"  runs: {', '.join(f'{v:.0f}' for v in values)}")  # fmt: skip


if __name__ == "__main__":
    main()
