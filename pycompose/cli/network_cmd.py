"""``pycompose network create|ls|inspect|rm|connect|disconnect|prune``, in docker's words.

Each command is a thin client of the engine's ``/networks`` routes; output is docker's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pycompose.cli import framework as fw
from pycompose.cli.container_base import (
    CliError,
    daemon_errors,
    engine_command,
    for_each,
    parse_filters,
)

if TYPE_CHECKING:
    from pycompose.engine.client import EngineClient

DEFAULT_LS = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
              "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
              "CreatedAt": "CREATED AT"}  # fmt: skip
PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue?"
)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not key:
            raise fw.UsageError(f"invalid {what} {item!r}: expected key=value")
        out[key] = value if eq else ""
    return out


def ipam_config(
    subnets: tuple[str, ...], gateways: tuple[str, ...], ranges: tuple[str, ...],
    aux: tuple[str, ...],
) -> list[dict[str, Any]]:  # fmt: skip
    """Docker's pairing of ``--subnet`` with the ``--gateway``/``--ip-range`` given after it."""
    if len(gateways) > len(subnets) or len(ranges) > len(subnets):
        raise fw.UsageError("every --gateway and --ip-range needs its own --subnet")
    config: list[dict[str, Any]] = []
    for i, subnet in enumerate(subnets):
        entry: dict[str, Any] = {"Subnet": subnet}
        if i < len(gateways):
            entry["Gateway"] = gateways[i]
        if i < len(ranges):
            entry["IPRange"] = ranges[i]
        config.append(entry)
    if aux:
        if len(config) != 1:
            raise fw.UsageError("--aux-address needs exactly one --subnet")
        config[0]["AuxiliaryAddresses"] = _pairs(aux, "--aux-address")
    return config


@fw.group()
def network() -> None:
    """Manage networks."""


@network.command("create")
@engine_command()
@fw.argument("name")
@fw.option("-d", "--driver", default="bridge", help="Driver to manage the Network.")
@fw.option("--internal", is_flag=True, help="Restrict external access to the network.")
@fw.option("--attachable", is_flag=True, help="Enable manual container attachment.")
@fw.option("--ipv6", is_flag=True, help="Enable IPv6 networking.")
@fw.option("--subnet", multiple=True, help="Subnet in CIDR format.")
@fw.option("--gateway", multiple=True, help="Gateway for the subnet.")
@fw.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range.")
@fw.option("--aux-address", multiple=True, help="Auxiliary addresses (name=ip).")
@fw.option("--label", multiple=True, help="Set metadata on a network.")
@fw.option("-o", "--opt", multiple=True, help="Set driver specific options.")
def create(client: EngineClient, name: str, driver: str, internal: bool, attachable: bool,
           ipv6: bool, subnet: tuple[str, ...], gateway: tuple[str, ...],
           ip_range: tuple[str, ...], aux_address: tuple[str, ...], label: tuple[str, ...],
           opt: tuple[str, ...]) -> None:  # fmt: skip
    """Create a network."""
    body = {
        "Name": name, "Driver": driver, "Internal": internal, "Attachable": attachable,
        "EnableIPv6": ipv6,
        "IPAM": {"Driver": "default",
                 "Config": ipam_config(subnet, gateway, ip_range, aux_address)},
        "Options": _pairs(opt, "--opt"), "Labels": _pairs(label, "--label"),
    }  # fmt: skip
    fw.echo(client.post("/networks/create", body)["Id"])


def network_row(data: Mapping[str, Any], trunc: bool = True) -> dict[str, str]:
    """One ``GET /networks`` entry as docker's ``network ls`` templates see it."""
    labels = data.get("Labels") or {}
    return {
        "ID": data["Id"][:12] if trunc else data["Id"],
        "Name": data["Name"], "Driver": data["Driver"], "Scope": data.get("Scope", "local"),
        "IPv4": "true", "IPv6": str(bool(data.get("EnableIPv6"))).lower(),
        "Internal": str(bool(data.get("Internal"))).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": _created_at(str(data.get("Created") or "")),
    }  # fmt: skip


def _created_at(created: str) -> str:
    import datetime

    try:
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f %z %Z")


def render_ls(networks: list[dict[str, Any]], fmt: str | None, quiet: bool, trunc: bool) -> str:
    """The text ``network ls`` prints (sorted by name, as docker does)."""
    from pycompose.cli import render

    rows = [network_row(n, trunc) for n in sorted(networks, key=lambda n: n["Name"])]
    if quiet:
        return "\n".join(r["ID"] for r in rows)
    return render.format_rows(fmt or DEFAULT_LS, rows, LS_HEADERS)


@network.command("ls")
@engine_command()
@fw.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@fw.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@fw.option("-f", "--filter", "filters", multiple=True, help="Provide filter values.")
@fw.option("--format", "fmt", default=None, help="table, json, or a Go template.")
def ls(client: EngineClient, quiet: bool, no_trunc: bool, filters: tuple[str, ...],
       fmt: str | None) -> None:  # fmt: skip
    """List networks."""
    wanted = parse_filters(filters)
    networks = client.get("/networks", query={"filters": json.dumps(wanted) if wanted else None})
    text = render_ls(networks, fmt, quiet, not no_trunc)
    if text:
        fw.echo(text)


@network.command("inspect")
@engine_command()
@fw.argument("names", nargs=-1, required=True)
@fw.option("-f", "--format", "fmt", default=None, help="Format with a Go template.")
@fw.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics.")
def inspect(client: EngineClient, names: tuple[str, ...], fmt: str | None, verbose: bool) -> None:
    """Display detailed information on one or more networks."""
    from pycompose.cli.container_ps import render_inspect
    from pycompose.engine.errors import NotFound

    found, missing = [], []
    for name in names:
        try:
            found.append(client.get(f"/networks/{name}", query={"verbose": verbose or None}))
        except NotFound:
            missing.append(name)
    if found or not missing:
        fw.echo(render_inspect(found, fmt))
    if missing:
        raise CliError("\n".join(f"Error: No such network: {m}" for m in missing))


@network.command("rm")
@engine_command()
@fw.argument("names", nargs=-1, required=True)
@fw.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
def rm(client: EngineClient, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more networks."""
    from pycompose.engine.errors import NotFound

    def remove(name: str) -> None:
        try:
            client.delete(f"/networks/{name}")
        except NotFound:
            if not force:
                raise

    for_each(names, remove)


@network.command("connect")
@engine_command()
@fw.argument("network_name", metavar="NETWORK")
@fw.argument("container")
@fw.option("--alias", multiple=True, help="Add network-scoped alias for the container.")
@fw.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104).")
@fw.option("--ip6", default="", help="IPv6 address (e.g., 2001:db8::33).")
@fw.option("--link", multiple=True, help="Add link to another container.")
@fw.option("--driver-opt", multiple=True, help="driver options for the network.")
def connect(client: EngineClient, network_name: str, container: str,
            alias: tuple[str, ...], ip: str, ip6: str, link: tuple[str, ...],
            driver_opt: tuple[str, ...]) -> None:  # fmt: skip
    """Connect a container to a network."""
    endpoint: dict[str, Any] = {"Aliases": list(alias), "Links": list(link),
                                "DriverOpts": _pairs(driver_opt, "--driver-opt")}  # fmt: skip
    if ip or ip6:
        endpoint["IPAMConfig"] = {"IPv4Address": ip, "IPv6Address": ip6}
    client.post(f"/networks/{network_name}/connect",
                {"Container": container, "EndpointConfig": endpoint})  # fmt: skip


@network.command("disconnect")
@engine_command()
@fw.argument("network_name", metavar="NETWORK")
@fw.argument("container")
@fw.option("-f", "--force", is_flag=True, help="Force the container to disconnect.")
def disconnect(client: EngineClient, network_name: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    client.post(f"/networks/{network_name}/disconnect", {"Container": container, "Force": force})


@network.command("prune")
@engine_command()
@fw.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@fw.option("--filter", "filters", multiple=True, help="Provide filter values (until=<ts>).")
def prune(client: EngineClient, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    if not force and not fw.confirm(PRUNE_WARNING, default=False):
        return
    wanted = parse_filters(filters)
    with daemon_errors():
        result = client.post(
            "/networks/prune", query={"filters": json.dumps(wanted) if wanted else None}
        )
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        fw.echo("Deleted Networks:")
        for name in deleted:
            fw.echo(name)
