"""``pycompose volume create|ls|inspect|rm|prune``, in docker's words and output formats."""

from __future__ import annotations

import json

import click

from pycompose.cli.image_cmd import engine_client, size_text, table
from pycompose.engine.errors import EngineError


def _pairs(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise click.UsageError(f"invalid {what} {item!r}: expected key=value")
        out[key] = value if eq else ""
    return out


def _filters(items: tuple[str, ...]) -> str | None:
    wanted: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise click.UsageError(f"bad format of filter (expected name=value): {item}")
        wanted.setdefault(key, []).append(value)
    return json.dumps(wanted) if wanted else None


@click.group()
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@click.argument("name", required=False)
@click.option("-d", "--driver", default="local", help="Specify volume driver name.")
@click.option("-l", "--label", "labels", multiple=True, help="Set metadata for a volume.")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options.")
def create(name: str | None, driver: str, labels: tuple[str, ...], opts: tuple[str, ...]) -> None:
    """Create a volume."""
    body = {
        "Name": name or "",
        "Driver": driver,
        "Labels": _pairs(labels, "label"),
        "DriverOpts": _pairs(opts, "option"),
    }
    click.echo(engine_client().post("/volumes/create", body)["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values.")
@click.option("--format", "fmt", default="table", help="'table' (default) or 'json'.")
def ls(quiet: bool, filters: tuple[str, ...], fmt: str) -> None:
    """List volumes."""
    if fmt not in ("table", "json"):
        raise click.UsageError(f"unsupported --format {fmt!r}: use 'table' or 'json'")
    query = {"filters": _filters(filters)}
    volumes = engine_client().get("/volumes", query)["Volumes"] or []
    volumes.sort(key=lambda v: v["Name"])
    if quiet:
        for v in volumes:
            click.echo(v["Name"])
    elif fmt == "json":
        for v in volumes:
            click.echo(json.dumps(v, separators=(",", ":")))
    else:
        click.echo(table([["DRIVER", "VOLUME NAME"]] + [[v["Driver"], v["Name"]] for v in volumes]))


@volume.command("inspect")
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    client = engine_client()
    found, missing = [], []
    for name in names:
        try:
            found.append(client.get(f"/volumes/{name}"))
        except EngineError as err:
            missing.append(str(err))
    click.echo(json.dumps(found, indent=4))
    if missing:
        raise EngineError("\n".join(f"Error response from daemon: {m}" for m in missing))


@volume.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    client = engine_client()
    errors = []
    for name in names:
        try:
            client.delete(f"/volumes/{name}", {"force": "1" if force else None})
            click.echo(name)
        except EngineError as err:
            errors.append(f"Error response from daemon: {err}")
    if errors:
        raise EngineError("\n".join(errors))


@volume.command("prune")
@click.option("-a", "--all", "all_volumes", is_flag=True, help="Remove all unused volumes.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values.")
def prune(all_volumes: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused local volumes (anonymous ones unless --all)."""
    what = "all local volumes" if all_volumes else "anonymous local volumes"
    if not force and not click.confirm(
        f"WARNING! This will remove {what} not used by at least one container.\n"
        "Are you sure you want to continue?",
        default=False,
    ):
        return
    items = filters + (("all=true",) if all_volumes else ())
    report = engine_client().post("/volumes/prune", query={"filters": _filters(items)})
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        click.echo("Deleted Volumes:")
        for name in deleted:
            click.echo(name)
        click.echo("")
    click.echo(f"Total reclaimed space: {size_text(int(report.get('SpaceReclaimed') or 0))}")
