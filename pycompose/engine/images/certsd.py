"""Per-registry TLS material from ``certs.d`` directories, laid out as dockerd reads them.

For a registry (or token service) ``host[:port]``, the directory ``<certs.d>/<host[:port]>/``
may hold:

- ``*.crt``: CA certificates (PEM) trusted for that host, in addition to the usual roots;
- ``*.cert`` with a ``*.key`` of the same name: a client certificate and its private key,
  presented when the server asks for one (mutual TLS). A ``.cert`` without its ``.key``, or a
  ``.key`` without its ``.cert``, is an error naming the file. With several pairs the first
  by file name is presented (Python's ssl offers one certificate per connection).

Other files are ignored. The port is part of the name: ``reg.example:5000`` and
``reg.example`` are different directories, as in docker. Two roots are searched, in order:
the engine's own (``/etc/pycompose/certs.d``, or ``--certs-dir`` / ``PYCOMPOSE_CERTS_DIR`` /
``certs-dir`` in daemon.json) and then docker's ``/etc/docker/certs.d``. The first root that
has a directory for the host wins, whole: the two are not merged. A token service (the
bearer ``realm``) is looked up under its own host[:port]; when no root has a directory for
it, its registry's directory is used, as dockerd uses the registry's TLS settings for both.

These files never turn verification off: only insecure registries do. The client certificate
of an insecure registry is still presented (its CAs are then moot); dockerd ignores certs.d
for insecure registries, which leaves a loopback registry wanting client certificates
unreachable.

The files are read each time a client needs them, so changes apply to the next pull or push
without restarting the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pycompose.engine.config import DEFAULT_CERTS_DIR, DOCKER_CERTS_DIR
from pycompose.engine.errors import EngineError

if TYPE_CHECKING:
    import ssl

E = TypeVar("E", bound=BaseException)

__all__ = ["DEFAULT_CERTS_DIR", "DOCKER_CERTS_DIR", "CertsDirError", "CertsDirs", "HostTLS"]
CA_SUFFIX = ".crt"
CERT_SUFFIX = ".cert"
KEY_SUFFIX = ".key"


class CertsDirError(EngineError):
    """A certs.d directory is incomplete or holds files that are not usable certificates."""

    status = 500


@dataclass(frozen=True)
class HostTLS:
    """The TLS files of one host, read from ``directory``."""

    directory: Path
    ca_files: tuple[Path, ...] = ()
    client_certs: tuple[tuple[Path, Path], ...] = ()

    @property
    def client_cert(self) -> tuple[Path, Path] | None:
        """The ``(cert, key)`` pair presented to the server, if any."""
        return self.client_certs[0] if self.client_certs else None


def host_dir_name(host: str) -> str:
    """The directory name for ``host[:port]``: the name itself, refused if it could escape."""
    if not host or host in (".", "..") or "/" in host or "\0" in host:
        raise CertsDirError(f"invalid registry host {host!r} for a certs.d lookup")
    return host


def read_host_dir(directory: Path) -> HostTLS:
    """Read one ``certs.d/<host>`` directory (which must exist)."""
    try:
        names = sorted(p.name for p in directory.iterdir() if p.is_file())
    except OSError as err:
        raise CertsDirError(f"cannot read certs.d directory {directory}: {err.strerror}") from err
    cas = tuple(directory / n for n in names if n.endswith(CA_SUFFIX))
    pairs: list[tuple[Path, Path]] = []
    for name in names:
        if name.endswith(CERT_SUFFIX):
            key = name[: -len(CERT_SUFFIX)] + KEY_SUFFIX
            if key not in names:
                raise CertsDirError(
                    f"missing key {directory / key} for client certificate {directory / name} "
                    f"(CA certificates must use the extension {CA_SUFFIX})"
                )
            pairs.append((directory / name, directory / key))
        elif name.endswith(KEY_SUFFIX):
            cert = name[: -len(KEY_SUFFIX)] + CERT_SUFFIX
            if cert not in names:
                raise CertsDirError(
                    f"missing client certificate {directory / cert} for key {directory / name}"
                )
    return HostTLS(directory, cas, tuple(pairs))


@dataclass(frozen=True)
class CertsDirs:
    """The certs.d roots searched for a host, first match wins."""

    roots: tuple[Path, ...] = (DEFAULT_CERTS_DIR, DOCKER_CERTS_DIR)

    @classmethod
    def of(cls, roots: Sequence[Path | str]) -> CertsDirs:
        """Roots from paths, duplicates dropped."""
        out: list[Path] = []
        for root in roots:
            if Path(root) not in out:
                out.append(Path(root))
        return cls(tuple(out))

    @property
    def primary(self) -> Path:
        """The root named in advice to users (the engine's own)."""
        return self.roots[0] if self.roots else DEFAULT_CERTS_DIR

    def hint(self, host: str) -> Path:
        """Where the CA of ``host`` should go: ``<primary root>/<host>/ca.crt``."""
        return self.primary / host_dir_name(host) / "ca.crt"

    def lookup(self, host: str) -> HostTLS | None:
        """The TLS files for ``host[:port]`` from the first root that has a directory for it."""
        name = host_dir_name(host)
        for root in self.roots:
            directory = root / name
            if directory.is_dir():
                return read_host_dir(directory)
        return None


def ssl_context(tls: HostTLS, *, verify: bool) -> ssl.SSLContext:
    """A client context: default roots plus the host's CAs (verified), its client cert."""
    import ssl

    import httpx

    if verify:
        ctx = httpx.create_ssl_context(verify=True)
        for ca in tls.ca_files:
            _load(ca, lambda p: ctx.load_verify_locations(cafile=str(p)), "CA certificate")
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    pair = tls.client_cert
    if pair is not None:
        cert, key = pair
        _load(
            cert,
            lambda p: ctx.load_cert_chain(str(p), str(key)),
            f"client certificate (with key {key})",
        )
    return ctx


def _load(path: Path, load: Callable[[Path], None], what: str) -> None:
    import ssl

    try:
        load(path)
    except ssl.SSLError as err:
        raise CertsDirError(f"cannot use {what} {path}: {err.reason or err}") from err
    except OSError as err:
        raise CertsDirError(f"cannot read {what} {path}: {err.strerror}") from err


# Alerts a server sends about the client certificate: none given, or not trusted.
_CLIENT_CERT_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "TLSV1_ALERT_UNKNOWN_CA",
    }
)


def tls_advice(err: BaseException, host: str, certs: CertsDirs) -> str:
    """What to do about a failed connection to ``host``, when TLS is why ("" otherwise)."""
    import ssl

    cause = _cause(err, ssl.SSLError)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"The TLS certificate of {host} did not verify: if a private CA signed it, "
            f"put that CA certificate in {certs.hint(host)}"
        )
    try:
        tls = certs.lookup(host)
    except CertsDirError:
        tls = None
    pair = tls.client_cert if tls is not None else None
    if isinstance(cause, ssl.SSLError) and cause.reason in _CLIENT_CERT_ALERTS:
        if pair is None:
            where = certs.primary / host_dir_name(host)
            return (
                f"{host} requires a client certificate: put it and its key in {where}/ "
                f"as client{CERT_SUFFIX} and client{KEY_SUFFIX}"
            )
        return (
            f"{host} did not accept the client certificate {pair[0]}: it must be signed "
            "by a CA the registry trusts"
        )
    if pair is not None and _cause(err, ConnectionResetError) is not None:
        # The server's alert is often lost when it resets the connection right after it.
        return (
            f"{host} reset the connection: it may not accept the client certificate "
            f"{pair[0]}, which must be signed by a CA the registry trusts"
        )
    return ""


def _cause(err: BaseException, kind: type[E]) -> E | None:
    """The first exception of type ``kind`` in the cause/context chain of ``err``."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe(err: BaseException) -> str:
    """``str(err)``, or the first non-empty message down its chain (httpx's are often "")."""
    current: BaseException | None = err
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        if str(current):
            return str(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return type(err).__name__
