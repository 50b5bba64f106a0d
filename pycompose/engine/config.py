"""Where an engine keeps its state and where it listens: one frozen value for daemon and client.

Everything is overridable so that tests (and users) can run fully isolated engines side by
side: flags win over the environment (``PYCOMPOSE_ROOT``, ``PYCOMPOSE_RUNTIME_DIR``,
``PYCOMPOSE_HOST``, ``PYCOMPOSE_BRIDGE_PREFIX``, ``PYCOMPOSE_SUBNET_POOL``), which wins over the
defaults. This module is imported by every CLI command that talks to the engine, so it uses
nothing beyond ``os``, ``pathlib`` and ``dataclasses``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pycompose.engine.errors import InvalidArgument

DEFAULT_ROOT = Path("/var/lib/pycompose")
DEFAULT_RUNTIME_DIR = Path("/run/pycompose")
DEFAULT_BRIDGE_PREFIX = "pc-"
DEFAULT_SUBNET_POOL = ("10.89.0.0/16",)
DEFAULT_SUBNET_SIZE = 24
SOCKET_NAME = "engine.sock"

# Bridge names are at most 15 characters (IFNAMSIZ - 1); the network part needs 9 of them.
_MAX_BRIDGE_PREFIX = 6
_BRIDGE_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,5}$")
_CIDR_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")


def socket_from_host(host: str) -> Path:
    """Return the socket path of a ``unix:///path`` engine URL; other schemes are refused."""
    scheme, sep, rest = host.partition("://")
    if not sep or scheme != "unix":
        raise InvalidArgument(
            f"unsupported engine host {host!r}: only unix:///path/to/socket URLs are supported"
        )
    if not rest.startswith("/"):
        raise InvalidArgument(f"engine host {host!r} must name an absolute socket path")
    return Path(rest)


@dataclass(frozen=True)
class EngineConfig:
    """The places and pools of one engine.

    ``root`` holds persistent state (content, layers, images, containers); ``runtime_dir``
    holds the socket, pid file, lock and log; ``socket_path`` is where the API listens.
    ``bridge_prefix`` starts every bridge name this engine creates and ``subnet_pool`` /
    ``subnet_size`` are where its networks' subnets come from, so that two engines on one
    host never collide.
    """

    root: Path = DEFAULT_ROOT
    runtime_dir: Path = DEFAULT_RUNTIME_DIR
    socket_path: Path = DEFAULT_RUNTIME_DIR / SOCKET_NAME
    bridge_prefix: str = DEFAULT_BRIDGE_PREFIX
    subnet_pool: tuple[str, ...] = DEFAULT_SUBNET_POOL
    subnet_size: int = DEFAULT_SUBNET_SIZE

    @classmethod
    def load(
        cls,
        *,
        root: str | os.PathLike[str] | None = None,
        runtime_dir: str | os.PathLike[str] | None = None,
        host: str | None = None,
        bridge_prefix: str | None = None,
        subnet_pool: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> EngineConfig:
        """Build a config from flags (arguments, ``None`` when not given) and the environment.

        ``subnet_pool`` is a comma-separated list of CIDRs, optionally followed by
        ``:<prefix length>`` for the size of each network (``10.89.0.0/16:24``).
        """
        env = os.environ if environ is None else environ
        root_s = root if root is not None else env.get("PYCOMPOSE_ROOT") or DEFAULT_ROOT
        run_s = (
            runtime_dir
            if runtime_dir is not None
            else env.get("PYCOMPOSE_RUNTIME_DIR") or DEFAULT_RUNTIME_DIR
        )
        root_p = _absolute(Path(root_s), "root")
        run_p = _absolute(Path(run_s), "runtime dir")
        host_s = host if host is not None else env.get("PYCOMPOSE_HOST") or ""
        sock = socket_from_host(host_s) if host_s else run_p / SOCKET_NAME
        prefix = bridge_prefix if bridge_prefix is not None else env.get("PYCOMPOSE_BRIDGE_PREFIX")
        pool_s = subnet_pool if subnet_pool is not None else env.get("PYCOMPOSE_SUBNET_POOL")
        pool, size = (
            parse_subnet_pool(pool_s) if pool_s else (DEFAULT_SUBNET_POOL, DEFAULT_SUBNET_SIZE)
        )
        return cls(
            root=root_p,
            runtime_dir=run_p,
            socket_path=sock,
            bridge_prefix=check_bridge_prefix(
                prefix if prefix is not None else DEFAULT_BRIDGE_PREFIX
            ),
            subnet_pool=pool,
            subnet_size=size,
        )

    @property
    def host(self) -> str:
        """The ``unix://`` URL of the API socket."""
        return f"unix://{self.socket_path}"

    @property
    def pid_path(self) -> Path:
        """File holding the running daemon's process id."""
        return self.runtime_dir / "engine.pid"

    @property
    def lock_path(self) -> Path:
        """File the running daemon holds an exclusive ``flock`` on."""
        return self.runtime_dir / "engine.lock"

    @property
    def log_path(self) -> Path:
        """Where an auto-started daemon's stdout and stderr go."""
        return self.runtime_dir / "engine.log"

    @property
    def owns_socket(self) -> bool:
        """True when the socket lives in the runtime dir, i.e. this engine may auto-start it.

        An explicit host elsewhere (say a Docker daemon's socket) is never auto-started.
        """
        return self.socket_path.parent == self.runtime_dir

    def serve_args(self) -> list[str]:
        """The ``engine serve`` flags that reproduce this config in a child process."""
        return [
            "--root", str(self.root),
            "--runtime-dir", str(self.runtime_dir),
            "--host", self.host,
            "--bridge-prefix", self.bridge_prefix,
            "--subnet-pool", f"{','.join(self.subnet_pool)}:{self.subnet_size}",
        ]  # fmt: skip


def _absolute(path: Path, what: str) -> Path:
    if not path.is_absolute():
        raise InvalidArgument(f"engine {what} must be an absolute path, got {str(path)!r}")
    return path


def check_bridge_prefix(prefix: str) -> str:
    """Validate a bridge-name prefix: a lowercase letter then up to 5 of ``[a-z0-9-]``."""
    if not _BRIDGE_PREFIX_RE.match(prefix):
        raise InvalidArgument(
            f"invalid bridge prefix {prefix!r}: use a lowercase letter followed by at most "
            f"{_MAX_BRIDGE_PREFIX - 1} of a-z, 0-9 and '-'"
        )
    return prefix


def parse_subnet_pool(text: str) -> tuple[tuple[str, ...], int]:
    """Parse ``"10.89.0.0/16,10.90.0.0/16:24"`` into the CIDRs and the per-network size."""
    pools_s, sep, size_s = text.partition(":")
    size = DEFAULT_SUBNET_SIZE
    if sep:
        if not size_s.isdigit() or not 8 <= int(size_s) <= 30:
            raise InvalidArgument(f"invalid subnet pool {text!r}: the size after ':' must be 8..30")
        size = int(size_s)
    pools = tuple(p.strip() for p in pools_s.split(",") if p.strip())
    if not pools:
        raise InvalidArgument(f"invalid subnet pool {text!r}: no CIDR given")
    import ipaddress  # only when a pool is given: keeps the client's import cheap

    for cidr in pools:
        try:
            net = ipaddress.IPv4Network(cidr) if _CIDR_RE.match(cidr) else None
        except ValueError as err:
            raise InvalidArgument(f"invalid subnet pool entry {cidr!r}: {err}") from err
        if net is None:
            raise InvalidArgument(f"invalid subnet pool entry {cidr!r}: expected a.b.c.d/len")
        if net.prefixlen > size:
            raise InvalidArgument(
                f"subnet pool entry {cidr!r} is smaller than the network size /{size}"
            )
    return pools, size
