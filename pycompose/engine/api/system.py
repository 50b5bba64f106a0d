"""System endpoints: ``/_ping``, ``/version``, ``/info`` and ``/events``.

Counts and component details come from providers the other parts of the engine register
(containers report their counts, images theirs, the runtime its name and version), so this
module knows no object store; what it measures itself (kernel, CPUs, memory, cgroup version)
it reads from the host once, lazily.
"""

from __future__ import annotations

import inspect
import os
import platform
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

from pycompose.engine.api.events import (
    EventBus,
    check_event_filters,
    parse_timestamp,
    stream_events,
)
from pycompose.engine.api.router import (
    Request,
    Response,
    Router,
    StreamResponse,
    json_response,
)
from pycompose.engine.api.server import API_VERSION, MIN_API_VERSION
from pycompose.engine.api.streams import json_line
from pycompose.engine.config import EngineConfig

InfoProvider: TypeAlias = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
"""Returns /info fields to merge over the defaults (``{"Containers": 3, ...}``)."""

ComponentProvider: TypeAlias = Callable[[], Mapping[str, Any]]
"""Returns one /version component: ``{"Name": "runc", "Version": "1.1.5", "Details": {...}}``."""

# Always insecure (config.LOOPBACK_INSECURE); dockerd lists them after the configured CIDRs,
# IPv6 first.
_LOOPBACK_CIDRS = ("::1/128", "127.0.0.0/8")

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}  # fmt: skip


def engine_version() -> str:
    """pycompose's version, reported as the engine's Version."""
    import pycompose

    return pycompose.__version__


def go_arch() -> str:
    """The machine in the GOARCH names Docker clients expect (``amd64``)."""
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


def cgroup_version() -> str:
    """ "2" on a unified cgroup v2 hierarchy, "1" otherwise (hybrid layouts count as v1)."""
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def total_memory() -> int:
    """MemTotal from /proc/meminfo, in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def operating_system() -> str:
    """PRETTY_NAME of /etc/os-release."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def backing_filesystem(path: Path) -> str:
    """The type of the file system holding ``path`` (the mount with the longest prefix)."""
    best, fstype = "", "unknown"
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return fstype
    target = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return fstype


def engine_id(root: Path) -> str:
    """A stable id for this engine, created on first use under the state root."""
    path = root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = str(uuid.uuid4())
        tmp = path.with_name(f".engine-id.{os.getpid()}")
        tmp.write_text(ident + "\n")
        os.replace(tmp, path)
        return ident


def registry_info(config: EngineConfig) -> dict[str, Any]:
    """/info's RegistryConfig in Docker's shape: host-named insecure registries and Docker
    Hub (with the mirrors) in IndexConfigs, the insecure CIDRs with loopback last."""
    mirrors = list(config.registry_mirrors)
    cidrs = [e for e in config.insecure_registries if "/" in e]
    cidrs += [e for e in _LOOPBACK_CIDRS if e not in cidrs]
    indexes: dict[str, Any] = {
        name: {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
        for name in config.insecure_registries if "/" not in name
    }
    indexes["docker.io"] = {"Name": "docker.io", "Mirrors": mirrors, "Secure": True,
                            "Official": True}
    return {"IndexConfigs": indexes, "InsecureRegistryCIDRs": cidrs, "Mirrors": mirrors}


class SystemService:
    """Serves the system endpoints of one engine."""

    def __init__(self, config: EngineConfig, events: EventBus) -> None:
        self.config = config
        self.events = events
        self.started = time.time()
        self._info_providers: list[InfoProvider] = []
        self._components: list[ComponentProvider] = []
        self.version = engine_version()

    def add_info_provider(self, provider: InfoProvider) -> None:
        """Merge the fields ``provider`` returns into every /info answer (later ones win)."""
        self._info_providers.append(provider)

    def add_version_component(self, provider: ComponentProvider) -> None:
        """Add a component (runtime, init binary...) to /version's ``Components``."""
        self._components.append(provider)

    def register(self, router: Router) -> None:
        """Add /_ping, /version, /info and /events to ``router``."""
        router.add("GET", "/_ping", self.ping)
        router.add("HEAD", "/_ping", self.ping)
        router.add("GET", "/version", self.get_version)
        router.add("GET", "/info", self.get_info)
        router.add("GET", "/events", self.get_events)

    def common_headers(self) -> dict[str, str]:
        """Headers Docker puts on every response."""
        return {
            "Server": f"pycompose/{self.version} (linux)",
            "Api-Version": API_VERSION,
            "Ostype": "linux",
        }

    async def ping(self, req: Request) -> Response:
        """``/_ping``: "OK", plus the headers clients negotiate with."""
        headers = {
            "Builder-Version": "1",  # the classic builder protocol; no BuildKit session
            "Docker-Experimental": "false",
            "Swarm": "inactive",
            "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache",
        }
        return Response(body=b"OK", content_type="text/plain; charset=utf-8", headers=headers)

    def version_data(self) -> dict[str, Any]:
        """The /version document."""
        kernel = platform.release()
        py = f"python{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
        engine = {
            "Name": "Engine",
            "Version": self.version,
            "Details": {
                "ApiVersion": API_VERSION,
                "Arch": go_arch(),
                "BuildTime": "",
                "Experimental": "false",
                "GitCommit": "",
                "GoVersion": py,
                "KernelVersion": kernel,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
            },
        }
        return {
            "Platform": {"Name": "pycompose Engine"},
            "Components": [engine, *(dict(c()) for c in self._components)],
            "Version": self.version,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": py,
            "Os": "linux",
            "Arch": go_arch(),
            "KernelVersion": kernel,
            "BuildTime": "",
        }

    async def get_version(self, req: Request) -> Response:
        """``GET /version``."""
        return json_response(self.version_data())

    async def info_data(self) -> dict[str, Any]:
        """The /info document: host facts, then every provider's fields over them."""
        data = self._default_info()
        for provider in self._info_providers:
            fields = provider()
            if inspect.isawaitable(fields):
                fields = await fields
            data.update(fields)
        return data

    def _default_info(self) -> dict[str, Any]:
        uname = platform.uname()
        runtimes = {name: {"path": name} for name in ("runc", "crun") if _which(name)}
        return {
            "ID": engine_id(self.config.root),
            "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
            "Images": 0,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", backing_filesystem(self.config.root)]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                        "Authorization": None, "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "CPUShares": True, "CPUSet": True, "PidsLimit": True, "OomKillDisable": False,
            "IPv4Forwarding": _ipv4_forwarding(),
            "Debug": False,
            "NFd": _count_fds(),
            "NGoroutines": 0,
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(),
            "NEventsListener": self.events.listeners,
            "KernelVersion": uname.release,
            "OperatingSystem": operating_system(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": uname.machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": registry_info(self.config),
            "NCPU": os.cpu_count() or 1,
            "MemTotal": total_memory(),
            "DockerRootDir": str(self.config.root),
            "HttpProxy": os.environ.get("HTTP_PROXY", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
            "NoProxy": os.environ.get("NO_PROXY", ""),
            "Name": socket.gethostname(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": self.version,
            "Runtimes": runtimes,
            "DefaultRuntime": next(iter(runtimes), ""),
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "tini",
            "ContainerdCommit": {"ID": ""},
            "RuncCommit": {"ID": ""},
            "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": [],
        }  # fmt: skip

    async def get_info(self, req: Request) -> Response:
        """``GET /info``."""
        return json_response(await self.info_data())

    async def get_events(self, req: Request) -> StreamResponse:
        """``GET /events``: newline-delimited JSON events, filtered, between since and until."""
        filters = req.filters()
        check_event_filters(filters)
        since_s, until_s = req.query_str("since"), req.query_str("until")
        since = parse_timestamp(since_s) if since_s else None
        until = parse_timestamp(until_s) if until_s else None
        return StreamResponse(_encode(stream_events(self.events, filters, since, until)))


async def _encode(events: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield json_line(event.to_json())
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def _ipv4_forwarding() -> bool:
    try:
        return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    except OSError:
        return False


def _count_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
