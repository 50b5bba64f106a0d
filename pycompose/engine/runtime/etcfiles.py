"""The files the engine writes for each container: /etc/hosts, /etc/resolv.conf, /etc/hostname.

They live in the container's directory and are bind-mounted over the image's copies, as
Docker does, so the image is never modified and the engine can rewrite them later (for
example when the container joins another network).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from pycompose.engine.errors import InvalidArgument

EMBEDDED_DNS = "127.0.0.11"
_FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")  # Docker's choice when the host has only local resolvers
_HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass(frozen=True)
class EtcParams:
    """What goes into a container's /etc files.

    ``addresses`` are the container's own IPs (the hostname resolves to them);
    ``extra_hosts`` are ``(name, ip)`` pairs (``--add-host``); ``embedded_dns`` selects
    the engine's resolver at 127.0.0.11 (user-defined networks) over the host's servers.
    ``host_network`` copies the host's files as Docker does for ``--network host``.
    """

    hostname: str
    domainname: str = ""
    addresses: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    embedded_dns: bool = False
    host_network: bool = False
    host_resolv_conf: str = field(default="")
    host_hosts: str = field(default="")


def _check_ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as err:
        raise InvalidArgument(f"invalid {what} {value!r}: not an IP address") from err


def hosts_content(p: EtcParams) -> str:
    """The text of /etc/hosts."""
    if p.host_network:
        base = p.host_hosts or _HOSTS_HEADER
        extra = "".join(f"{_check_ip(ip, 'extra host')}\t{n}\n" for n, ip in p.extra_hosts)
        return base + ("" if base.endswith("\n") else "\n") + extra
    out = [_HOSTS_HEADER]
    for name, ip in p.extra_hosts:
        out.append(f"{_check_ip(ip, 'extra host')}\t{name}\n")
    fqdn = f"{p.hostname}.{p.domainname}" if p.domainname else p.hostname
    names = " ".join(dict.fromkeys([fqdn, p.hostname, *p.aliases]))
    for ip in p.addresses:
        out.append(f"{_check_ip(ip, 'address')}\t{names}\n")
    return "".join(out)


def _host_resolvers(text: str) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            options.extend(words[1:])
    return servers, search, options


def _is_local(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_loopback
    except ValueError:
        return True


def resolv_conf_content(p: EtcParams) -> str:
    """The text of /etc/resolv.conf, following Docker's rules for each network mode."""
    host_servers, host_search, host_options = _host_resolvers(p.host_resolv_conf)
    search = list(p.dns_search) or host_search
    options = list(p.dns_options) or host_options
    if p.embedded_dns:
        servers = [EMBEDDED_DNS]
        options = [*[o for o in options if not o.startswith("ndots:")], "ndots:0"]
    elif p.dns:
        servers = [_check_ip(s, "dns server") for s in p.dns]
    elif p.host_network:
        servers = host_servers
    else:
        # A loopback resolver of the host is unreachable from the container's own netns.
        servers = [s for s in host_servers if not _is_local(s)] or list(_FALLBACK_DNS)
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_etc_files(directory: Path, p: EtcParams) -> dict[str, Path]:
    """Write the three files into ``directory``; return ``{container path: host path}``."""
    if not p.hostname:
        raise InvalidArgument("a container needs a hostname for /etc/hostname")
    files = {
        "/etc/hosts": (directory / "hosts", hosts_content(p)),
        "/etc/resolv.conf": (directory / "resolv.conf", resolv_conf_content(p)),
        "/etc/hostname": (directory / "hostname", p.hostname + "\n"),
    }
    for path, text in files.values():
        _write(path, text)
    return {target: path for target, (path, _) in files.items()}


def read_host_files(root: Path = Path("/")) -> tuple[str, str]:
    """The host's resolv.conf and hosts text (empty when missing)."""
    out: list[str] = []
    for name in ("etc/resolv.conf", "etc/hosts"):
        try:
            out.append((root / name).read_text())
        except OSError:
            out.append("")
    return out[0], out[1]
