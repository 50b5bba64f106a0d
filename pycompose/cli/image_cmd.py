"""``pycompose image ...`` and docker's top-level image commands (images, pull, push, tag,
rmi, login, logout), in docker's words and output formats.

Every command talks to the engine through the stdlib client (the daemon is started when
nothing answers). Output is rendered here; the engine sends Docker's JSON shapes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from pycompose.cli import framework as fw
from pycompose.engine.config import EngineConfig
from pycompose.engine.errors import EngineError
from pycompose.humanize import human_duration

if TYPE_CHECKING:
    from pycompose.engine.client import ClientResponse, EngineClient

# Progress lines docker leaves out when the output is not a terminal (they carry a bar).
_BAR_STATUSES = frozenset({"Downloading", "Extracting", "Pushing", "Waiting"})
_NONE = "<none>"


def engine_client() -> EngineClient:
    """A client for the engine configured by the environment, starting it if needed."""
    from pycompose.engine.daemon import ensure_daemon

    return ensure_daemon(EngineConfig.load())


def registry_auth_header(reference: str) -> dict[str, str]:
    """``X-Registry-Auth`` with the saved credentials for ``reference``'s registry."""
    import base64

    from pycompose.engine.images.auth import AuthStore
    from pycompose.engine.images.reference import parse_reference

    domain = parse_reference(reference).domain
    creds = AuthStore().lookup(domain)
    doc = {"serveraddress": domain}
    if creds is not None:
        doc.update(username=creds.username, password=creds.password)
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()}


# -- rendering ------------------------------------------------------------------------------


def since(created: int, now: float | None = None) -> str:
    """``2 years ago`` for a Unix time (``N/A`` when unknown)."""
    if created <= 0:
        return "N/A"
    return human_duration((time.time() if now is None else now) - created) + " ago"


def size_text(size: int) -> str:
    """Decimal size with 3 significant digits, as docker prints it (``2.13MB``)."""
    from pycompose.engine.api.streams import human_size

    return human_size(size)


def table(rows: list[list[str]]) -> str:
    """Columns as docker's tabwriter lays them out: at least 10 wide, 3 spaces of padding."""
    if not rows:
        return ""
    widths = [max(10, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + row[-1]).rstrip())
    return "\n".join(lines)


def render_progress(events: Iterable[dict[str, Any]], quiet: bool = False) -> None:
    """Docker's non-terminal progress: one line per status change, bars left out."""
    for event in events:
        if quiet or "status" not in event:
            continue
        status = str(event["status"])
        if status in _BAR_STATUSES and event.get("progressDetail"):
            continue
        ident = event.get("id")
        fw.echo(f"{ident}: {status}" if ident else status)


def stream_json(resp: ClientResponse) -> Iterator[dict[str, Any]]:
    """The JSON documents of a progress stream; an in-stream error raises."""
    with resp:
        for obj in resp.iter_json():
            if isinstance(obj, dict):
                yield obj


def image_rows(images: list[dict[str, Any]], digests: bool, no_trunc: bool) -> list[dict[str, Any]]:
    """One row per repository:tag (``<none>`` rows for untagged images), docker's order."""
    rows = []
    for image in images:
        ident = image["Id"] if no_trunc else image["Id"].split(":", 1)[-1][:12]
        repo_digests = image.get("RepoDigests") or []
        tags = image.get("RepoTags") or []
        pairs = (
            [tuple(t.rsplit(":", 1)) for t in tags]
            or [(d.split("@", 1)[0], _NONE) for d in repo_digests[:1]]
            or [(_NONE, _NONE)]
        )
        for repo, tag in pairs:
            digest = next(
                (d.split("@", 1)[1] for d in repo_digests if d.split("@", 1)[0] == repo), _NONE
            )
            rows.append(
                {
                    "Repository": repo,
                    "Tag": tag,
                    "Digest": digest,
                    "ID": ident,
                    "Created": int(image.get("Created") or 0),
                    "Size": int(image.get("Size") or 0),
                }
            )
    return rows


def _created_at(created: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(created))


# -- commands -------------------------------------------------------------------------------


@fw.group()
def image() -> None:
    """Manage images."""


@image.command("pull")
@fw.argument("name")
@fw.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@fw.option("--platform", default="", help="Set platform if server is multi-platform capable.")
def pull(name: str, quiet: bool, platform: str) -> None:
    """Download an image from a registry."""
    from pycompose.engine.images.reference import Reference, parse_reference

    ref = parse_reference(name)
    query = {
        "fromImage": str(Reference(ref.domain, ref.path, None, None)),
        "tag": ref.digest or ref.tag,
        "platform": platform or None,
    }
    client = engine_client()
    resp = client.stream("POST", "/images/create", query=query, headers=registry_auth_header(name))
    render_progress(stream_json(resp), quiet)
    fw.echo(str(ref))


@image.command("push")
@fw.argument("name")
@fw.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository.")
@fw.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
def push(name: str, all_tags: bool, quiet: bool) -> None:
    """Upload an image to a registry."""
    from pycompose.engine.images.reference import Reference, parse_reference

    ref = parse_reference(name, default_tag=not all_tags)
    if all_tags and (ref.tag is not None or ref.digest is not None):
        raise fw.UsageError("tag can't be used with --all-tags/-a")
    repo = str(Reference(ref.domain, ref.path, None, None))
    client = engine_client()
    resp = client.stream(
        "POST",
        f"/images/{repo}/push",
        query={"tag": ref.tag or ""},
        headers=registry_auth_header(name),
    )
    render_progress(stream_json(resp), quiet)
    if quiet:
        fw.echo(str(ref))


@image.command("tag")
@fw.argument("source")
@fw.argument("target")
def tag(source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    from pycompose.engine.images.reference import parse_reference

    ref = parse_reference(target)
    if ref.digest is not None:
        raise EngineError(f"refusing to create a tag with a digest reference: {target}")
    engine_client().call("POST", f"/images/{source}/tag", query={"repo": ref.name, "tag": ref.tag})


@image.command("ls")
@fw.argument("repository", required=False)
@fw.option("-a", "--all", "show_all", is_flag=True, help="Show all images.")
@fw.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@fw.option("--digests", is_flag=True, help="Show digests.")
@fw.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@fw.option("-f", "--filter", "filters", multiple=True, help="Filter output (key=value).")
@fw.option("--format", "fmt", default="table", help="'table' (default) or 'json'.")
def ls(
    repository: str | None,
    show_all: bool,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    fmt: str,
) -> None:
    """List images."""
    if fmt not in ("table", "json"):
        raise fw.UsageError(f"unsupported --format {fmt!r}: use 'table' or 'json'")
    wanted: dict[str, list[str]] = {}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq:
            raise fw.UsageError(f"bad format of filter (expected name=value): {item}")
        wanted.setdefault(key, []).append(value)
    if repository:
        wanted.setdefault("reference", []).append(repository)
    images = engine_client().get(
        "/images/json", query={"all": show_all, "filters": wanted or None, "digests": digests}
    )
    rows = image_rows(images, digests, no_trunc)
    if quiet:
        seen = dict.fromkeys(r["ID"] for r in rows)
        for ident in seen:
            fw.echo(ident)
        return
    if fmt == "json":
        for r in rows:
            fw.echo(
                json.dumps(
                    {
                        "Containers": "N/A",
                        "CreatedAt": _created_at(r["Created"]),
                        "CreatedSince": since(r["Created"]),
                        "Digest": r["Digest"],
                        "ID": r["ID"],
                        "Repository": r["Repository"],
                        "SharedSize": "N/A",
                        "Size": size_text(r["Size"]),
                        "Tag": r["Tag"],
                        "UniqueSize": "N/A",
                        "VirtualSize": size_text(r["Size"]),
                    },
                    separators=(",", ":"),
                )
            )
        return
    head = ["REPOSITORY", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "CREATED", "SIZE"]
    body = [
        [
            r["Repository"],
            r["Tag"],
            *([r["Digest"]] if digests else []),
            r["ID"],
            since(r["Created"]),
            size_text(r["Size"]),
        ]
        for r in rows
    ]
    fw.echo(table([head, *body]))


@image.command("rm")
@fw.argument("images", nargs=-1, required=True)
@fw.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@fw.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
def rm(images: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    client = engine_client()
    failed = False
    for name in images:
        try:
            items = client.delete(f"/images/{name}", query={"force": force, "noprune": no_prune})
        except EngineError as err:
            fw.echo(str(err), err=True)
            failed = True
            continue
        for item in items or []:
            for key in ("Untagged", "Deleted"):
                if key in item:
                    fw.echo(f"{key}: {item[key]}")
    if failed:
        raise fw.Exit(1)


@image.command("inspect")
@fw.argument("images", nargs=-1, required=True)
def inspect(images: tuple[str, ...]) -> None:
    """Display detailed information on one or more images (a JSON array)."""
    client = engine_client()
    out = [client.get(f"/images/{name}/json") for name in images]
    fw.echo(json.dumps(out, indent=4))


@image.command("history")
@fw.argument("name")
@fw.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@fw.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@fw.option("-H", "--human", default=True, type=bool, help="Human readable sizes and dates.")
@fw.option("--format", "fmt", default="table", help="'table' (default) or 'json'.")
def history(name: str, quiet: bool, no_trunc: bool, human: bool, fmt: str) -> None:
    """Show the history of an image."""
    steps = engine_client().get(f"/images/{name}/history")
    rows = []
    for step in steps:
        ident = step["Id"] if no_trunc or step["Id"] == "<missing>" else step["Id"][7:19]
        created_by = step.get("CreatedBy", "")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        created = since(step["Created"]) if human else _created_at(step["Created"])
        size = size_text(step["Size"]) if human else str(step["Size"])
        rows.append(
            {
                "ID": ident,
                "CreatedSince": created,
                "CreatedBy": created_by,
                "Size": size,
                "Comment": step.get("Comment", ""),
            }
        )
    if quiet:
        for r in rows:
            fw.echo(r["ID"])
    elif fmt == "json":
        for r in rows:
            fw.echo(json.dumps(r, separators=(",", ":")))
    else:
        head = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        fw.echo(
            table(
                [
                    head,
                    *[
                        [r["ID"], r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]]
                        for r in rows
                    ],
                ]
            )
        )


@image.command("import")
@fw.argument("source")
@fw.argument("repository", required=False)
@fw.option("-c", "--change", "changes", multiple=True, help="Dockerfile instruction to apply.")
@fw.option("-m", "--message", default="", help="Commit message for the imported image.")
@fw.option("--platform", default="", help="Platform of the image (os/arch).")
def import_(
    source: str, repository: str | None, changes: tuple[str, ...], message: str, platform: str
) -> None:
    """Import the contents of a tarball (a file or '-') to create an image."""
    query: dict[str, Any] = {
        "fromSrc": "-",
        "repo": repository,
        "changes": list(changes),
        "message": message or None,
        "platform": platform or None,
    }
    with (
        _open_input(source) as data,
        engine_client().stream("POST", "/images/create", query=query, data=data) as resp,
    ):
        for obj in resp.iter_json():
            if isinstance(obj, dict) and obj.get("status"):
                fw.echo(obj["status"])


@image.command("load")
@fw.option("-i", "--input", "source", default="-", help="Read from tar archive file, not STDIN.")
@fw.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load(source: str, quiet: bool) -> None:
    """Load images from a tar archive (docker-archive or OCI layout)."""
    with (
        _open_input(source) as data,
        engine_client().stream("POST", "/images/load", query={"quiet": quiet}, data=data) as resp,
    ):
        for obj in resp.iter_json():
            if isinstance(obj, dict) and obj.get("stream"):
                fw.echo(str(obj["stream"]), nl=False)


@image.command("save")
@fw.argument("images", nargs=-1, required=True)
@fw.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT.")
def save(images: tuple[str, ...], output: str | None) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    if output is None and sys.stdout.isatty():
        raise fw.UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = engine_client().stream("GET", "/images/get", query={"names": list(images)})
    from pycompose.cli.container_base import save_chunks

    with resp:
        save_chunks(resp.iter_chunks(), output)


@image.command("prune")
@fw.option("-a", "--all", "prune_all", is_flag=True, help="Remove all unused images.")
@fw.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@fw.option("--filter", "filters", multiple=True, help="Provide filter values (until=24h).")
def prune(prune_all: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images (only dangling ones unless -a)."""
    what = (
        "all images without at least one container associated to them"
        if prune_all
        else "all dangling images"
    )
    if not force and not fw.confirm(
        f"WARNING! This will remove {what}.\nAre you sure you want to continue?", default=False
    ):
        return
    wanted: dict[str, list[str]] = {"dangling": ["false" if prune_all else "true"]}
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq:
            raise fw.UsageError(f"bad format of filter (expected name=value): {item}")
        wanted.setdefault(key, []).append(value)
    result = engine_client().post("/images/prune", query={"filters": wanted})
    deleted = result.get("ImagesDeleted") or []
    if deleted:
        fw.echo("Deleted Images:")
        for item in deleted:
            for key in ("Untagged", "Deleted"):
                if key in item:
                    fw.echo(f"{key.lower()}: {item[key]}")
        fw.echo("")
    fw.echo(f"Total reclaimed space: {size_text(int(result.get('SpaceReclaimed') or 0))}")


@fw.command("login")
@fw.argument("server", required=False)
@fw.option("-u", "--username", default=None, help="Username.")
@fw.option("-p", "--password", default=None, help="Password.")
@fw.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
def login(
    server: str | None, username: str | None, password: str | None, password_stdin: bool
) -> None:
    """Log in to a registry (the engine checks the credentials; they are saved locally)."""
    from pycompose.engine.images.auth import AuthStore, registry_key
    from pycompose.engine.images.registry import Credentials

    if password_stdin:
        if password is not None:
            raise fw.UsageError("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.read().rstrip("\r\n")
    if not username:
        username = fw.prompt("Username")
    if password is None:
        password = fw.prompt("Password", hide_input=True)
    key = registry_key(server or "docker.io")
    engine_client().post(
        "/auth", body={"username": username, "password": password, "serveraddress": key}
    )
    AuthStore().save(key, Credentials(username, password))
    fw.echo("Login Succeeded")


@fw.command("logout")
@fw.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry (forget the saved credentials)."""
    from pycompose.engine.images.auth import AuthStore, registry_key

    key = registry_key(server or "docker.io")
    if AuthStore().remove(key):
        fw.echo(f"Removing login credentials for {key}")
    else:
        fw.echo(f"Not logged in to {key}")


def _open_input(source: str) -> contextlib.AbstractContextManager[BinaryIO]:
    """The tarball to send, as a file the client streams from (never read into memory)."""
    if source == "-":
        if sys.stdin.isatty():
            raise fw.UsageError("requested load from stdin, but stdin is empty")
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(source, "rb")  # closed by the caller's with
    except OSError as err:
        raise fw.FileError(source, err.strerror) from err


image.add_command(rm, "remove")
image.add_command(ls, "list")
