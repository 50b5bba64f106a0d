"""``ps``/``ls``, ``inspect`` and ``top``: listing and describing containers in docker's
formats (its table columns, ``--format`` templates, ``json``, JSON arrays)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pycompose.cli import framework as fw
from pycompose.cli import render
from pycompose.cli.container_base import CliError, engine_command, parse_filters
from pycompose.engine.errors import NotFound

if TYPE_CHECKING:
    from pycompose.engine.client import EngineClient

PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
    "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS",
    "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
}
DEFAULT_PS = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t" \
             "{{.Ports}}\t{{.Names}}"
_JSON_FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                "Names", "Networks", "Ports", "RunningFor", "Size", "State", "Status")


class ContainerRow:
    """One ``GET /containers/json`` entry as docker's ``ps`` templates see it."""

    def __init__(self, data: Mapping[str, Any], trunc: bool = True,
                 now: float | None = None) -> None:
        self.data = data
        self.trunc = trunc
        self.now = time.time() if now is None else now

    @property
    def ID(self) -> str:
        ident = str(self.data.get("Id", ""))
        return ident[:12] if self.trunc else ident

    @property
    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.data.get("Names") or []]
        if self.trunc:
            plain = [n for n in names if "/" not in n]
            names = plain[:1] or names
        return ",".join(names)

    @property
    def Image(self) -> str:
        image = str(self.data.get("Image", ""))
        if not self.trunc:
            return image
        if image.startswith("sha256:"):
            return image[7:19]
        return image.split("@", 1)[0]

    @property
    def Command(self) -> str:
        command = str(self.data.get("Command", ""))
        return render.go_quote(render.ellipsis(command, 20) if self.trunc else command)

    @property
    def CreatedAt(self) -> str:
        return render.go_time(float(self.data.get("Created") or 0))

    @property
    def RunningFor(self) -> str:
        return render.ago(float(self.data.get("Created") or 0), self.now)

    @property
    def Ports(self) -> str:
        return render.display_ports(self.data.get("Ports") or [])

    @property
    def State(self) -> str:
        return str(self.data.get("State", ""))

    @property
    def Status(self) -> str:
        return str(self.data.get("Status", ""))

    @property
    def Size(self) -> str:
        rw = render.human_size(int(self.data.get("SizeRw") or 0))
        root = int(self.data.get("SizeRootFs") or 0)
        return f"{rw} (virtual {render.human_size(root)})" if root > 0 else rw

    @property
    def Labels(self) -> str:
        labels = self.data.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:
        """The value of one label (empty when unset)."""
        return str((self.data.get("Labels") or {}).get(name, ""))

    @property
    def Mounts(self) -> str:
        names = []
        for mount in self.data.get("Mounts") or []:
            name = str(mount.get("Name") or mount.get("Source") or "")
            names.append(render.ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    @property
    def Networks(self) -> str:
        nets = ((self.data.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(nets))

    @property
    def LocalVolumes(self) -> str:
        mounts = self.data.get("Mounts") or []
        return str(sum(1 for m in mounts if m.get("Driver") == "local"))

    def as_json(self) -> dict[str, str | None]:
        """What ``{{json .}}`` and ``--format json`` print (docker 28's keys, sorted)."""
        out: dict[str, str | None] = {name: getattr(self, name) for name in _JSON_FIELDS}
        out["Platform"] = None  # docker fills it from image manifests the list API lacks
        return dict(sorted(out.items()))


def ps_format(fmt: str | None, quiet: bool, size: bool) -> str:
    """The template a ``ps`` invocation renders with."""
    if quiet and (not fmt or fmt == "table"):
        return "{{.ID}}"
    if not fmt or fmt == "table":
        return DEFAULT_PS + ("\t{{.Size}}" if size else "")
    return fmt


def render_ps(containers: list[dict[str, Any]], fmt: str, trunc: bool,
              now: float | None = None) -> str:
    """The text ``ps`` prints for an API container list."""
    rows = [ContainerRow(c, trunc, now) for c in containers]
    return render.format_rows(fmt, rows, PS_HEADERS)


def wants_size(fmt: str | None) -> bool:
    """docker asks for sizes when a custom template uses ``.Size`` (``{{json .}}`` does)."""
    return bool(fmt) and fmt != "json" and (
        ".Size" in str(fmt) or re.search(r"json\s+\.\s*}}", str(fmt)) is not None)


@fw.command("ls")
@engine_command()
@fw.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@fw.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@fw.option("-n", "--last", type=int, default=-1, help="Show n last created containers.")
@fw.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@fw.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@fw.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@fw.option("-f", "--filter", "filters", multiple=True, help="Filter output (key=value).")
@fw.option("--format", "fmt", default=None, help="table, json, or a Go template.")
def ps(client: EngineClient, show_all: bool, quiet: bool, last: int, latest: bool, size: bool,
       no_trunc: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List containers."""
    limit = 1 if latest else last
    query = {"all": show_all or None, "limit": limit if limit > 0 else None,
             "size": size or (not quiet and wants_size(fmt)) or None,
             "filters": parse_filters(filters) or None}
    containers = client.get("/containers/json", query=query)
    text = render_ps(containers, ps_format(fmt, quiet, size), trunc=not no_trunc)
    if text:
        fw.echo(text)


def _inspect_one(client: EngineClient, name: str, kind: str | None, size: bool) -> Any:
    if kind in (None, "container"):
        try:
            return client.get(f"/containers/{name}/json", query={"size": size or None})
        except NotFound as err:
            if kind == "container":
                raise CliError(f"Error response from daemon: {err}") from None
    if kind in (None, "image"):
        try:
            return client.get(f"/images/{name}/json")
        except NotFound:
            pass
    raise CliError(f"Error: No such object: {name}")


def render_inspect(objects: list[Any], fmt: str | None) -> str:
    """A JSON array indented like docker's, or one template result per object."""
    if not fmt:
        return json.dumps(objects, indent=4, ensure_ascii=False)
    from pycompose.cli.container_typed import is_container, typed
    from pycompose.cli.gotemplate import Template, TemplateError

    if fmt == "json":
        fmt = "{{json .}}"
    try:
        template = Template(fmt)
        return "\n".join(template.render(typed(obj) if is_container(obj) else obj)
                         for obj in objects)
    except TemplateError as err:
        raise CliError(f"template parsing error: {err}") from err


def inspect_command(kind: str | None) -> fw.Command:
    """``inspect`` for containers only (``container inspect``) or any object (top level)."""

    @fw.command("inspect")
    @engine_command()
    @fw.argument("names", nargs=-1, required=True)
    @fw.option("-f", "--format", "fmt", default=None, help="Format with a Go template.")
    @fw.option("-s", "--size", is_flag=True, help="Display total file sizes.")
    @fw.option("--type", "type_", default=None, help="Only this type of object.")
    def inspect(client: EngineClient, names: tuple[str, ...], fmt: str | None, size: bool,
                type_: str | None) -> None:
        """Display detailed information on one or more containers."""
        if type_ not in (None, "container", "image"):
            raise CliError(f'"{type_}" is not a valid value for --type')
        objects, errors = [], []
        for name in names:
            try:
                objects.append(_inspect_one(client, name, kind or type_, size))
            except CliError as err:
                errors.append(str(err))
        if objects or not fmt:  # docker prints "[]" even when nothing was found
            try:
                fw.echo(render_inspect(objects, fmt))
            except CliError:
                fw.echo("")  # docker ends the (empty) output before the error
                raise
        for message in errors:
            fw.echo(message, err=True)
        if errors:
            raise fw.Exit(1)

    return inspect


container_inspect = inspect_command("container")
any_inspect = inspect_command(None)


def render_top(result: Mapping[str, Any]) -> str:
    """``top``'s table: docker's tabwriter with 20-wide minimum columns."""
    rows = [list(result.get("Titles") or [])]
    rows += [[str(c) for c in proc] for proc in result.get("Processes") or []]
    return render.tabwrite(rows, minwidth=20, padding=3)


@fw.command("top", interspersed=False)
@engine_command()
@fw.argument("container")
@fw.argument("ps_args", nargs=-1, type=fw.UNPROCESSED)
def top(client: EngineClient, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    query = {"ps_args": " ".join(ps_args)} if ps_args else None
    fw.echo(render_top(client.get(f"/containers/{container}/top", query=query)))
