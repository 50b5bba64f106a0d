"""Legacy ``--link name:alias``: /etc/hosts lines in the linking container only.

Docker writes, into the linking container's /etc/hosts, one line per link naming the
linked container's address with the alias, the container's name and its short id; the
linked container learns nothing (links are one way). On user-defined networks Docker makes
the link an alias that only the linking container resolves: the same line in its own
/etc/hosts gives exactly that, so both cases are served here.

On the default bridge a link also sets Docker's environment variables in the linking
container (``DB_NAME``, ``DB_PORT``, ``DB_PORT_5432_TCP_ADDR``..., ``DB_ENV_<var>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from pycompose.engine.containers.record import ContainerRecord
from pycompose.engine.errors import Conflict, InvalidArgument, NotFound
from pycompose.netns.records import Endpoint, NetworkRecord

Pairs = Sequence[tuple[NetworkRecord, Endpoint]]


def parse_link(text: str) -> tuple[str, str]:
    """``web:db``, ``web`` or Docker's stored ``/web:/app/db`` -> (``web``, ``db``)."""
    name, _, alias = str(text).partition(":")
    name = name.strip().lstrip("/")
    alias = alias.strip().rsplit("/", 1)[-1] or name
    if not name or "/" in name:
        raise InvalidArgument(f"invalid link {text!r}: want name or name:alias")
    return name, alias


def parse_links(links: Iterable[str] | None) -> list[tuple[str, str]]:
    """Every link of ``HostConfig.Links``."""
    return [parse_link(link) for link in links or ()]


def check_links(links: Iterable[str] | None, lookup: Callable[[str], ContainerRecord]) -> None:
    """At create: every linked container must exist (Docker refuses the create otherwise)."""
    for name, _ in parse_links(links):
        try:
            lookup(name)
        except NotFound:
            raise InvalidArgument(
                f"could not get container for {name}: No such container: {name}"
            ) from None


def _shared_address(mine: Pairs, theirs: Pairs) -> str:
    my_networks = {rec.id for rec, _ in mine}
    shared = [ep for rec, ep in theirs if rec.id in my_networks]
    for ep in shared or list(ep for _, ep in theirs):
        if ep.ipv4 or ep.ipv6:
            return ep.ipv4 or ep.ipv6
    return ""


def _port_sort_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port) if port.isdigit() else 0, proto or "tcp")


def link_env(linker: str, alias: str, other: ContainerRecord, address: str) -> list[str]:
    """Docker's legacy link variables for one link (``alias`` as the prefix, upper-cased)."""
    prefix = alias.upper().replace("-", "_")
    out = [f"{prefix}_NAME=/{linker}/{alias}"]
    ports = sorted(other.config.get("ExposedPorts") or {}, key=_port_sort_key)
    for i, key in enumerate(ports):
        port, _, proto = key.partition("/")
        proto = proto or "tcp"
        url = f"{proto}://{address}:{port}"
        if i == 0:
            out.append(f"{prefix}_PORT={url}")
        base = f"{prefix}_PORT_{port}_{proto.upper()}"
        out += [f"{base}={url}", f"{base}_ADDR={address}", f"{base}_PORT={port}",
                f"{base}_PROTO={proto}"]  # fmt: skip
    for entry in other.config.get("Env") or []:
        key, sep, value = str(entry).partition("=")
        # Docker leaves out what every image sets anyway.
        if sep and key not in ("HOME", "PATH"):
            out.append(f"{prefix}_ENV_{key}={value}")
    return out


def resolve_links(
    record: ContainerRecord,
    mine: Pairs,
    lookup: Callable[[str], ContainerRecord],
    endpoints_of: Callable[[str], Pairs],
) -> list[tuple[str, ContainerRecord, str]]:
    """``(alias, linked container, its address)`` for each link of ``record``."""
    out: list[tuple[str, ContainerRecord, str]] = []
    for name, alias in parse_links(record.host_config.get("Links")):
        try:
            other = lookup(name)
        except NotFound:
            raise InvalidArgument(f"could not get container for {name}") from None
        if other.state.status not in ("running", "paused"):
            raise Conflict(
                f"Cannot link to a non running container: /{other.name} AS /{record.name}/{alias}"
            )
        address = _shared_address(mine, endpoints_of(other.id))
        if not address:
            raise Conflict(f"Cannot link to /{other.name}: it has no address on a network")
        out.append((alias, other, address))
    return out
