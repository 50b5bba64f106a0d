"""``pycompose container ...`` and docker's top-level container commands (``run``, ``ps``,
``logs``, ``exec``, ``stop``, ``rm``, ...), a pure client of the Docker Engine API.

Each command reaches the engine given by ``-H``/``PYCOMPOSE_HOST`` (our own engine, started
when nothing answers, or a Docker daemon), prints what docker prints, and fails with docker's
one-line ``Error response from daemon: ...``. The streaming commands are in
``container_run``, listings in ``container_ps``, files in ``container_files``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import TYPE_CHECKING

from pycompose.cli import framework as fw
from pycompose.cli.container_base import CliError, engine_command, for_each, parse_filters
from pycompose.cli.container_files import commit, cp, export
from pycompose.cli.container_ps import container_inspect, ps, top
from pycompose.cli.container_run import attach, create, exec_, run, start

if TYPE_CHECKING:
    from pycompose.engine.client import EngineClient



def api_timestamp(value: str, now: float | None = None) -> str:
    """``--since``/``--until`` as the API's ``seconds.nanoseconds``: a Go duration back from
    now (``10m``, ``1h30m``), an RFC 3339 date or time, or Unix seconds."""
    from pycompose.cli.container_parse import go_duration

    now = time.time() if now is None else now
    text = value.strip()
    seconds = go_duration(text) if text != "0" else None
    if seconds is not None:
        ts = now - seconds
    elif re.fullmatch(r"\d+(\.\d+)?", text):
        return text if "." in text else f"{text}.000000000"
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as err:
            raise CliError(f"invalid value for time: {value!r} (use a duration like 10m, "
                           f"an RFC 3339 time, or Unix seconds)") from err
        ts = parsed.timestamp()
    secs = int(ts // 1)
    return f"{secs}.{round((ts - secs) * 1e9):09d}"


@fw.group()
def container() -> None:
    """Manage containers."""


@fw.command("stop")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
@fw.option("-t", "--time", "--timeout", "timeout", type=int, default=None,
              help="Seconds to wait before killing the container.")
@fw.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
def stop(client: EngineClient, containers: tuple[str, ...], timeout: int | None,
         sig: str | None) -> None:
    """Stop one or more running containers."""
    query = {"t": timeout, "signal": sig}
    for_each(containers, lambda n: client.post(f"/containers/{n}/stop", query=query))


@fw.command("restart")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
@fw.option("-t", "--time", "--timeout", "timeout", type=int, default=None,
              help="Seconds to wait before killing the container.")
@fw.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
def restart(client: EngineClient, containers: tuple[str, ...], timeout: int | None,
            sig: str | None) -> None:
    """Restart one or more containers."""
    query = {"t": timeout, "signal": sig}
    for_each(containers, lambda n: client.post(f"/containers/{n}/restart", query=query))


@fw.command("kill")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
@fw.option("-s", "--signal", "sig", default=None, help="Signal to send to the container.")
def kill(client: EngineClient, containers: tuple[str, ...], sig: str | None) -> None:
    """Kill one or more running containers."""
    for_each(containers, lambda n: client.post(f"/containers/{n}/kill", query={"signal": sig}))


@fw.command("rm")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
@fw.option("-f", "--force", is_flag=True, help="Force the removal of a running container.")
@fw.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes too.")
@fw.option("-l", "--link", is_flag=True, help="Remove the specified link.")
def rm(client: EngineClient, containers: tuple[str, ...], force: bool, volumes: bool,
       link: bool) -> None:
    """Remove one or more containers."""
    query = {"force": force or None, "v": volumes or None, "link": link or None}
    for_each(containers, lambda n: client.delete(f"/containers/{n}", query=query))


@fw.command("pause")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
def pause(client: EngineClient, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    for_each(containers, lambda n: client.post(f"/containers/{n}/pause"))


@fw.command("unpause")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
def unpause(client: EngineClient, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    for_each(containers, lambda n: client.post(f"/containers/{n}/unpause"))


@fw.command("wait")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
def wait(client: EngineClient, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""

    def one(name: str) -> None:
        with client.request("POST", f"/containers/{name}/wait", timeout=None) as resp:
            result = resp.json() or {}
        fw.echo(str(result.get("StatusCode", 0)))

    for_each(containers, one, echo=False)


@fw.command("rename")
@engine_command()
@fw.argument("container")
@fw.argument("new_name")
def rename(client: EngineClient, container: str, new_name: str) -> None:
    """Rename a container."""
    if not new_name.strip():
        raise CliError("Error: Neither old nor new names may be empty")
    client.post(f"/containers/{container}/rename", query={"name": new_name})


@fw.command("logs")
@engine_command()
@fw.argument("container")
@fw.option("-f", "--follow", is_flag=True, help="Follow log output.")
@fw.option("-n", "--tail", default="all", help="Number of lines to show from the end.")
@fw.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@fw.option("--since", default=None, help="Logs since a timestamp or relative (42m).")
@fw.option("--until", default=None, help="Logs before a timestamp or relative (42m).")
@fw.option("--details", is_flag=True, help="Show extra details provided to logs.")
def logs(client: EngineClient, container: str, follow: bool, tail: str, timestamps: bool,
         since: str | None, until: str | None, details: bool) -> None:
    """Fetch the logs of a container."""
    import os

    from pycompose.cli.container_run import pump_frames

    info = client.get(f"/containers/{container}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    query = {"stdout": True, "stderr": True, "follow": follow or None, "tail": tail,
             "timestamps": timestamps or None, "details": details or None,
             "since": api_timestamp(since) if since else None,
             "until": api_timestamp(until) if until else None}
    with client.stream("GET", f"/containers/{info['Id']}/logs", query=query) as resp:
        pump_frames(resp, tty=tty, stdout_fd=1, stderr_fd=2, write=os.write)


@fw.command("prune")
@engine_command()
@fw.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@fw.option("--filter", "filters", multiple=True, help="Provide filter values (until=24h).")
def prune(client: EngineClient, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    from pycompose.cli.render import human_size

    if not force and not fw.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?", default=False):
        return
    result = client.post("/containers/prune", query={"filters": parse_filters(filters) or None})
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        fw.echo("Deleted Containers:")
        for ident in deleted:
            fw.echo(ident)
        fw.echo("")
    fw.echo(f"Total reclaimed space: {human_size(int(result.get('SpaceReclaimed') or 0))}")


_SUBCOMMANDS: dict[str, fw.Command] = {
    "run": run, "create": create, "start": start, "stop": stop, "restart": restart,
    "kill": kill, "rm": rm, "ls": ps, "logs": logs, "exec": exec_, "top": top,
    "inspect": container_inspect, "wait": wait, "pause": pause, "unpause": unpause, "cp": cp,
    "export": export, "commit": commit, "prune": prune, "rename": rename, "attach": attach,
}
for _name, _command in _SUBCOMMANDS.items():
    container.add_command(_command, _name)
container.add_command(ps, "ps")
container.add_command(ps, "list")
container.add_command(rm, "remove")


def _add_port() -> None:
    # Imported here so that the port module can use container_base without a cycle.
    from pycompose.cli.container_port import port

    container.add_command(port, "port")


_add_port()
