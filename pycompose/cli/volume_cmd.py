"""``pycompose volume create|ls|inspect|rm|prune``, in docker's words and output formats."""

from __future__ import annotations

import json

from pycompose.cli import framework as fw
from pycompose.cli.image_cmd import engine_client, size_text, table
from pycompose.engine.errors import EngineError


def _pairs(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise fw.UsageError(f"invalid {what} {item!r}: expected key=value")
        out[key] = value if eq else ""
    return out


def _filters(items: tuple[str, ...]) -> str | None:
    wanted: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise fw.UsageError(f"bad format of filter (expected name=value): {item}")
        wanted.setdefault(key, []).append(value)
    return json.dumps(wanted) if wanted else None


@fw.group()
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@fw.argument("name", required=False)
@fw.option("-d", "--driver", default="local", help="Specify volume driver name.")
@fw.option("-l", "--label", "labels", multiple=True, help="Set metadata for a volume.")
@fw.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options.")
def create(name: str | None, driver: str, labels: tuple[str, ...], opts: tuple[str, ...]) -> None:
    """Create a volume."""
    body = {
        "Name": name or "",
        "Driver": driver,
        "Labels": _pairs(labels, "label"),
        "DriverOpts": _pairs(opts, "option"),
    }
    fw.echo(engine_client().post("/volumes/create", body)["Name"])


@volume.command("ls")
@fw.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@fw.option("-f", "--filter", "filters", multiple=True, help="Provide filter values.")
@fw.option("--format", "fmt", default="table", help="'table' (default) or 'json'.")
def ls(quiet: bool, filters: tuple[str, ...], fmt: str) -> None:
    """List volumes."""
    if fmt not in ("table", "json"):
        raise fw.UsageError(f"unsupported --format {fmt!r}: use 'table' or 'json'")
    query = {"filters": _filters(filters)}
    volumes = engine_client().get("/volumes", query)["Volumes"] or []
    volumes.sort(key=lambda v: v["Name"])
    if quiet:
        for v in volumes:
            fw.echo(v["Name"])
    elif fmt == "json":
        for v in volumes:
            fw.echo(json.dumps(v, separators=(",", ":")))
    else:
        fw.echo(table([["DRIVER", "VOLUME NAME"]] + [[v["Driver"], v["Name"]] for v in volumes]))


@volume.command("inspect")
@fw.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    client = engine_client()
    found, missing = [], []
    for name in names:
        try:
            found.append(client.get(f"/volumes/{name}"))
        except EngineError as err:
            missing.append(str(err))
    fw.echo(json.dumps(found, indent=4))
    if missing:
        raise EngineError("\n".join(f"Error response from daemon: {m}" for m in missing))


@volume.command("rm")
@fw.argument("names", nargs=-1, required=True)
@fw.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    client = engine_client()
    errors = []
    for name in names:
        try:
            client.delete(f"/volumes/{name}", {"force": "1" if force else None})
            fw.echo(name)
        except EngineError as err:
            errors.append(f"Error response from daemon: {err}")
    if errors:
        raise EngineError("\n".join(errors))


@volume.command("prune")
@fw.option("-a", "--all", "all_volumes", is_flag=True, help="Remove all unused volumes.")
@fw.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@fw.option("--filter", "filters", multiple=True, help="Provide filter values.")
def prune(all_volumes: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused local volumes (anonymous ones unless --all)."""
    what = "all local volumes" if all_volumes else "anonymous local volumes"
    if not force and not fw.confirm(
        f"WARNING! This will remove {what} not used by at least one container.\n"
        "Are you sure you want to continue?",
        default=False,
    ):
        return
    items = filters + (("all=true",) if all_volumes else ())
    report = engine_client().post("/volumes/prune", query={"filters": _filters(items)})
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        fw.echo("Deleted Volumes:")
        for name in deleted:
            fw.echo(name)
        fw.echo("")
    fw.echo(f"Total reclaimed space: {size_text(int(report.get('SpaceReclaimed') or 0))}")
