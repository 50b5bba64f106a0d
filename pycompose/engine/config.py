"""Where an engine keeps its state and where it listens: one frozen value for daemon and client.

Everything is overridable so that tests (and users) can run fully isolated engines side by
side: flags win over the environment (``PYCOMPOSE_ROOT``, ``PYCOMPOSE_RUNTIME_DIR``,
``PYCOMPOSE_HOST``, ``PYCOMPOSE_BRIDGE_PREFIX``, ``PYCOMPOSE_SUBNET_POOL``), which wins over the
defaults. Registry settings (mirrors, insecure registries) also come from a JSON daemon config
file, as dockerd's ``daemon.json``, below the environment (``PYCOMPOSE_REGISTRY_MIRRORS``,
``PYCOMPOSE_INSECURE_REGISTRIES``, ``PYCOMPOSE_CERTS_DIR``); only ``engine serve`` reads that
file. This module is
imported by every CLI command that talks to the engine, so it uses nothing beyond ``os``,
``re``, ``pathlib`` and ``typing`` at import time (a ``NamedTuple``, not a dataclass:
``dataclasses`` imports ``inspect``, 6-8 ms of every CLI run).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from pycompose.engine.errors import InvalidArgument

DEFAULT_ROOT = Path("/var/lib/pycompose")
DEFAULT_RUNTIME_DIR = Path("/run/pycompose")
DEFAULT_BRIDGE_PREFIX = "pc-"
DEFAULT_SUBNET_POOL = ("10.89.0.0/16",)
DEFAULT_SUBNET_SIZE = 24
SOCKET_NAME = "engine.sock"
DAEMON_FILE = "daemon.json"
# Per-registry CA and client certificates (see pycompose.engine.images.certsd): ours first,
# then docker's.
DEFAULT_CERTS_DIR = Path("/etc/pycompose/certs.d")
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")
# Loopback is always insecure, as in dockerd: a registry on this host needs no certificate.
LOOPBACK_INSECURE = ("127.0.0.0/8", "::1/128", "localhost")

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


class EngineConfig(NamedTuple):
    """The places and pools of one engine.

    ``root`` holds persistent state (content, layers, images, containers); ``runtime_dir``
    holds the socket, pid file, lock and log; ``socket_path`` is where the API listens.
    ``bridge_prefix`` starts every bridge name this engine creates and ``subnet_pool`` /
    ``subnet_size`` are where its networks' subnets come from, so that two engines on one
    host never collide. ``registry_mirrors`` (normalised ``scheme://host[:port]/`` URLs) are
    tried first for Docker Hub pulls; ``insecure_registries`` are the configured
    ``host[:port]`` names and CIDRs allowed plain http or unverified TLS (loopback is added
    where they are used, see :data:`LOOPBACK_INSECURE`). ``certs_dir`` is the engine's
    certs.d root (``<certs_dir>/<host[:port]>/`` holds a registry's CA and client
    certificates), searched before docker's ``/etc/docker/certs.d``. ``config_file`` is the
    daemon config file named on the command line, if any.
    """

    root: Path = DEFAULT_ROOT
    runtime_dir: Path = DEFAULT_RUNTIME_DIR
    socket_path: Path = DEFAULT_RUNTIME_DIR / SOCKET_NAME
    bridge_prefix: str = DEFAULT_BRIDGE_PREFIX
    subnet_pool: tuple[str, ...] = DEFAULT_SUBNET_POOL
    subnet_size: int = DEFAULT_SUBNET_SIZE
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    certs_dir: Path = DEFAULT_CERTS_DIR
    config_file: Path | None = None

    @classmethod
    def load(
        cls,
        *,
        root: str | os.PathLike[str] | None = None,
        runtime_dir: str | os.PathLike[str] | None = None,
        host: str | None = None,
        bridge_prefix: str | None = None,
        subnet_pool: str | None = None,
        registry_mirrors: Sequence[str] | None = None,
        insecure_registries: Sequence[str] | None = None,
        certs_dir: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        read_config_file: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> EngineConfig:
        """Build a config from flags (arguments, ``None`` when not given) and the environment.

        ``subnet_pool`` is a comma-separated list of CIDRs, optionally followed by
        ``:<prefix length>`` for the size of each network (``10.89.0.0/16:24``).
        ``registry_mirrors`` / ``insecure_registries`` are the repeated flags (empty means
        not given), ``certs_dir`` the certs.d flag. With ``read_config_file`` (``engine
        serve``) or an explicit ``config_file``, the daemon config file is read too:
        ``config_file`` (which must exist) or else ``<config dir>/daemon.json`` if it exists.
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
        mirrors, insecure, certs = load_registry_settings(
            registry_mirrors, insecure_registries, env,
            config_file=Path(config_file) if config_file is not None else None,
            read_default=read_config_file, certs_flag=certs_dir,
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
            registry_mirrors=mirrors,
            insecure_registries=insecure,
            certs_dir=certs,
            config_file=Path(config_file) if config_file is not None else None,
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
        args = [
            "--root", str(self.root),
            "--runtime-dir", str(self.runtime_dir),
            "--host", self.host,
            "--bridge-prefix", self.bridge_prefix,
            "--subnet-pool", f"{','.join(self.subnet_pool)}:{self.subnet_size}",
        ]  # fmt: skip
        if self.config_file is not None:
            args += ["--config-file", str(self.config_file)]
        for mirror in self.registry_mirrors:
            args += ["--registry-mirror", mirror]
        for entry in self.insecure_registries:
            args += ["--insecure-registry", entry]
        if self.certs_dir != DEFAULT_CERTS_DIR:
            args += ["--certs-dir", str(self.certs_dir)]
        return args

    @property
    def registry_certs_dirs(self) -> tuple[Path, ...]:
        """The certs.d roots the registry client searches: ours, then docker's."""
        return (self.certs_dir, DOCKER_CERTS_DIR)

    @property
    def registry_insecure_all(self) -> tuple[str, ...]:
        """The configured insecure registries followed by loopback (always insecure)."""
        return self.insecure_registries + tuple(
            e for e in LOOPBACK_INSECURE if e not in self.insecure_registries
        )


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


# -- registry settings ---------------------------------------------------------------------

_DAEMON_KEYS = {"registry-mirrors": "mirrors", "insecure-registries": "insecure"}
# Keys holding one path, kept as a 1-tuple beside the lists.
_DAEMON_PATH_KEYS = {"certs-dir": "certs"}
_HOSTNAME_RE = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


def config_dir(environ: Mapping[str, str]) -> Path:
    """pycompose's config dir, found as the credentials store finds it.

    ``$PYCOMPOSE_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/pycompose``, else
    ``~/.config/pycompose``.
    """
    if given := environ.get("PYCOMPOSE_CONFIG_DIR"):
        return Path(given)
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pycompose"


def load_registry_settings(
    mirror_flags: Sequence[str] | None,
    insecure_flags: Sequence[str] | None,
    environ: Mapping[str, str],
    *,
    config_file: Path | None = None,
    read_default: bool = False,
    certs_flag: str | os.PathLike[str] | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...], Path]:
    """Resolve and validate the registry mirrors, insecure registries and certs.d root.

    Each setting comes from the first of: the flags, the environment (comma-separated lists),
    the daemon config file. Returns ``(mirrors, insecure, certs_dir)``; any invalid value
    raises InvalidArgument naming it and where it came from.
    """
    file_values: dict[str, tuple[str, ...]] = {}
    path = config_file
    if path is None and read_default:
        path = config_dir(environ) / DAEMON_FILE
    if path is not None and (config_file is not None or path.exists()):
        file_values = read_daemon_file(path)
    insecure_raw, insecure_src = _pick(
        insecure_flags, environ, "PYCOMPOSE_INSECURE_REGISTRIES", file_values, "insecure",
        "--insecure-registry", f"{path} insecure-registries",
    )
    mirrors_raw, mirrors_src = _pick(
        mirror_flags, environ, "PYCOMPOSE_REGISTRY_MIRRORS", file_values, "mirrors",
        "--registry-mirror", f"{path} registry-mirrors",
    )
    insecure = parse_insecure_registries(insecure_raw, insecure_src)
    mirrors = parse_mirrors(mirrors_raw, mirrors_src, insecure)
    return mirrors, insecure, _certs_dir(certs_flag, environ, file_values, path)


def _certs_dir(
    flag: str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    file_values: Mapping[str, tuple[str, ...]],
    path: Path | None,
) -> Path:
    """The certs.d root: ``--certs-dir``, ``PYCOMPOSE_CERTS_DIR``, daemon.json, default."""
    if flag is not None and str(flag):
        value, source = str(flag), "--certs-dir"
    elif environ.get("PYCOMPOSE_CERTS_DIR", "").strip():
        value, source = environ["PYCOMPOSE_CERTS_DIR"].strip(), "PYCOMPOSE_CERTS_DIR"
    elif "certs" in file_values:
        value, source = file_values["certs"][0], f"{path} certs-dir"
    else:
        return DEFAULT_CERTS_DIR
    if not os.path.isabs(value):
        raise InvalidArgument(f"invalid certs dir {value!r} ({source}): "
                              "expected an absolute path")
    return Path(os.path.normpath(value))


def _pick(
    flags: Sequence[str] | None,
    environ: Mapping[str, str],
    env_name: str,
    file_values: Mapping[str, tuple[str, ...]],
    file_key: str,
    flag_name: str,
    file_source: str,
) -> tuple[tuple[str, ...], str]:
    if flags:
        return tuple(flags), flag_name
    env_value = environ.get(env_name, "")
    if env_value.strip():
        return tuple(p.strip() for p in env_value.split(",") if p.strip()), env_name
    return file_values.get(file_key, ()), file_source


def read_daemon_file(path: Path) -> dict[str, tuple[str, ...]]:
    """Read a dockerd-style ``daemon.json``; only its registry keys are supported.

    Returns ``{"mirrors": (...), "insecure": (...), "certs": (path,)}`` for the keys present.
    """
    import json  # only engine serve reads the file: keep the client's import cheap

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidArgument(f"cannot read daemon config file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise InvalidArgument(f"daemon config file {path} is not UTF-8 text") from err
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as err:
        raise InvalidArgument(f"daemon config file {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise InvalidArgument(f"daemon config file {path} must hold a JSON object")
    supported = [*_DAEMON_KEYS, *_DAEMON_PATH_KEYS]
    unknown = sorted(set(data) - set(supported))
    if unknown:
        raise InvalidArgument(
            f"daemon config file {path}: unsupported key(s) {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(supported)}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for key, name in _DAEMON_KEYS.items():
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"daemon config file {path}: {key} must be a list of strings")
        out[name] = tuple(value)
    for key, name in _DAEMON_PATH_KEYS.items():
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise InvalidArgument(f"daemon config file {path}: {key} must be a path")
            out[name] = (data[key],)
    return out


def parse_insecure_registries(entries: Sequence[str], source: str) -> tuple[str, ...]:
    """Validate ``host[:port]`` names and CIDRs (normalised, duplicates dropped).

    As dockerd does, a leading ``http://`` or ``https://`` is removed; any other scheme is
    refused.
    """
    import ipaddress  # only when insecure registries are given

    out: list[str] = []
    for raw in entries:
        entry = raw.strip()
        for scheme in ("http://", "https://"):
            if entry.lower().startswith(scheme):
                entry = entry[len(scheme):]
        if "://" in entry:
            raise InvalidArgument(f"invalid insecure registry {raw!r} ({source}): "
                                  "only a host[:port] or a CIDR, without a scheme")
        if "/" in entry:
            try:
                entry = str(ipaddress.ip_network(entry, strict=False))
            except ValueError as err:
                raise InvalidArgument(
                    f"invalid insecure registry {raw!r} ({source}): not a valid CIDR: {err}"
                ) from err
        elif not _valid_host_port(entry):
            raise InvalidArgument(
                f"invalid insecure registry {raw!r} ({source}): expected host[:port] or a CIDR"
            )
        if entry not in out:
            out.append(entry)
    return tuple(out)


def _valid_host_port(text: str) -> bool:
    import ipaddress

    host, port = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return False
        port = rest[1:] if rest else ""
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return not rest or _valid_port(port)
    if text.count(":") == 1:
        host, port = text.split(":")
        if not _valid_port(port):
            return False
    return bool(_HOSTNAME_RE.match(host)) and len(host) <= 253


def _valid_port(port: str) -> bool:
    return port.isdigit() and 0 < int(port) <= 65535


def parse_mirrors(
    entries: Sequence[str], source: str, insecure: Sequence[str]
) -> tuple[str, ...]:
    """Validate mirror URLs and normalise them to ``scheme://host[:port]/``.

    A plain-http mirror must be an insecure registry (loopback always is), since the
    registry client refuses plain http to any other host.
    """
    from urllib.parse import urlsplit  # only when mirrors are given

    out: list[str] = []
    for raw in entries:
        try:
            url = urlsplit(raw.strip())
            url.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as err:
            raise InvalidArgument(f"invalid registry mirror {raw!r} ({source}): {err}") from err
        problem = ""
        if url.scheme not in ("http", "https"):
            problem = "the URL must start with http:// or https://"
        elif not url.hostname or not _valid_host_port(url.netloc.rpartition("@")[2]):
            problem = "the URL has no valid host"
        elif url.username is not None or url.password is not None:
            problem = "a user name or password is not allowed in the URL"
        elif url.query or url.fragment or raw.strip().endswith(("?", "#")):
            problem = "a query or fragment is not allowed in the URL"
        elif url.path not in ("", "/"):
            problem = "a path is not supported: give scheme://host[:port]"
        elif url.scheme == "http" and not is_insecure(url.netloc, (*insecure, *LOOPBACK_INSECURE)):
            problem = (f"plain http needs {url.netloc} to be an insecure registry "
                       f"(add --insecure-registry {url.netloc})")
        if problem:
            raise InvalidArgument(f"invalid registry mirror {raw!r} ({source}): {problem}")
        normal = f"{url.scheme}://{url.netloc.lower()}/"
        if normal not in out:
            out.append(normal)
    return tuple(out)


def is_insecure(host: str, entries: Sequence[str]) -> bool:
    """Whether ``host[:port]`` is one of ``entries`` (insecure registries: names with or
    without the port, and CIDRs). Loopback counts only when listed (``LOOPBACK_INSECURE``)."""
    import ipaddress

    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    for entry in entries:
        if entry in (host, name):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False
