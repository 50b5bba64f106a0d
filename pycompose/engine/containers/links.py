"""Legacy ``--link name:alias``: /etc/hosts lines in the linking container only.

Docker writes, into the linking container's /etc/hosts, one line per link naming the
linked container's address with the alias, the container's name and its short id; the
linked container learns nothing (links are one way). On user-defined networks Docker makes
the link an alias that only the linking container resolves: the same line in its own
/etc/hosts gives exactly that, so both cases are served here.
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


def link_hosts(
    record: ContainerRecord,
    mine: Pairs,
    lookup: Callable[[str], ContainerRecord],
    endpoints_of: Callable[[str], Pairs],
) -> list[tuple[str, str]]:
    """``(names, ip)`` lines for the linking container's /etc/hosts.

    ``names`` holds the alias, the linked container's name and short id separated by spaces
    (one hosts line names them all). A linked container that is not running is an error, as
    in Docker.
    """
    out: list[tuple[str, str]] = []
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
        names = " ".join(dict.fromkeys([alias, other.name, other.short_id]))
        out.append((names, address))
    return out
