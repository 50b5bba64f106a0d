"""``run``, ``create``, ``start``, ``attach`` and ``exec``: the commands that stream a
container's input and output, in docker's order of API calls.

``run`` creates (pulling the image when missing), attaches before it starts (so no output is
lost), asks for the exit with ``wait`` before it starts too (``removed`` with ``--rm``),
starts, copies the streams, and exits with the container's status. A TTY run puts the
terminal in raw mode, forwards window sizes and restores the terminal at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pycompose.cli import framework as fw
from pycompose.cli.container_base import CliError, daemon_message, engine_command
from pycompose.cli.container_opts import CreateRequest, RunOptions, create_request
from pycompose.cli.container_parse import OptionError
from pycompose.engine.errors import EngineError, NotFound

if TYPE_CHECKING:
    from pycompose.engine.client import ClientResponse, EngineClient, HijackedConnection

# Options end at the image (or container): what follows is the command and its own flags.
# -h is --hostname in run and create, as in docker; their bad flags end with status 125.
_RUN_LIKE: dict[str, Any] = {"help_flags": ["--help"], "interspersed": False,
                             "usage_exit_code": 125}


def start_exit_code(message: str) -> int:
    """Docker's exit code for a container that could not start: 127 for a missing command,
    126 for one that cannot be executed, 125 for anything else."""
    if any(s in message for s in ("executable file not found", "no such file or directory",
                                  "system cannot find the file specified")):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def terminal_size() -> tuple[int, int]:
    """``(rows, cols)`` of the terminal on stdout or stdin, ``(0, 0)`` without one."""
    for fd in (1, 0):
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            return size.lines, size.columns
    return 0, 0


def check_tty(tty: bool, interactive: bool) -> None:
    """Docker refuses ``-it`` when stdin is not a terminal."""
    if tty and interactive and not os.isatty(0):
        raise CliError("the input device is not a TTY", 1)


# -- pulling ------------------------------------------------------------------------------------


def pull_image(client: EngineClient, image: str, platform: str | None) -> None:
    """Pull ``image``, printing docker's progress lines on stderr."""
    from pycompose.cli.image_cmd import registry_auth_header
    from pycompose.engine.images.reference import Reference, parse_reference

    try:
        ref = parse_reference(image)
    except EngineError as err:
        raise CliError(f"invalid reference format: {err}", 125) from err
    query = {"fromImage": str(Reference(ref.domain, ref.path, None, None)),
             "tag": ref.digest or ref.tag, "platform": platform or None}
    with client.stream("POST", "/images/create", query=query,
                       headers=registry_auth_header(image)) as resp:
        for event in resp.iter_json():
            if not isinstance(event, dict) or "status" not in event:
                continue
            if event.get("progressDetail") and event["status"] in ("Downloading", "Extracting"):
                continue  # a bar: docker leaves those out when stderr is not a terminal
            ident = event.get("id")
            fw.echo(f"{ident}: {event['status']}" if ident else event["status"], err=True)


def create_container(client: EngineClient, req: CreateRequest, image: str, pull: str,
                     platform: str | None) -> str:
    """Create the container, pulling the image first (``--pull``) or when it is missing."""
    if pull == "always":
        pull_image(client, image, platform)
    try:
        result = client.post("/containers/create", body=req.body, query=req.query)
    except NotFound as err:
        if pull != "missing" or "image" not in str(err).lower():
            raise
        shown = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else f"{image}:latest"
        fw.echo(f"Unable to find image '{shown}' locally", err=True)
        pull_image(client, image, platform)
        result = client.post("/containers/create", body=req.body, query=req.query)
    for warning in result.get("Warnings") or []:
        fw.echo(f"WARNING: {warning}", err=True)
    return str(result["Id"])


# -- streaming ----------------------------------------------------------------------------------


def open_wait(client: EngineClient, cid: str, condition: str) -> ClientResponse:
    """Ask for the container's exit now; the answer is read later by :func:`wait_result`."""
    return client.request("POST", f"/containers/{cid}/wait", query={"condition": condition},
                          timeout=None)


def wait_result(resp: ClientResponse) -> int:
    """The exit status from a wait answer (125 when the engine reports an error)."""
    with resp:
        result = resp.json() or {}
    error = result.get("Error") or {}
    if error.get("Message"):
        fw.echo(f"Error waiting for container: {error['Message']}", err=True)
        return 125
    return int(result.get("StatusCode", 0))


@contextlib.contextmanager
def proxy_signals(client: EngineClient, cid: str, enabled: bool) -> Iterator[None]:
    """Forward SIGINT/SIGTERM/SIGHUP... to the container while attached (docker's sig-proxy)."""
    if not enabled:
        yield
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
            signal.SIGUSR2)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(EngineError, OSError):
            client.post(f"/containers/{cid}/kill",
                        query={"signal": signal.Signals(signum).name})

    old = {s: signal.signal(s, forward) for s in sigs}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def resizer(client: EngineClient, path: str) -> Callable[[int, int], None]:
    """A window-size callback that tells the engine (errors ignored: it may have exited)."""

    def resize(rows: int, cols: int) -> None:
        with contextlib.suppress(EngineError, OSError):
            client.post(path, query={"h": rows, "w": cols})

    return resize


def pump(conn: HijackedConnection, *, stdin: bool, on_resize: Callable[[int, int], None] | None,
         ) -> None:
    """Copy stdin to the connection and its output to stdout/stderr until it ends."""
    from pycompose.engine.client import passthrough

    sys.stdout.flush()
    sys.stderr.flush()
    passthrough(conn, stdin_fd=0 if stdin else None, stdout_fd=1, stderr_fd=2,
                on_resize=on_resize if conn.tty else None)


def attach_and_start(client: EngineClient, cid: str, *, tty: bool, stdin: bool, condition: str,
                     sig_proxy: bool, start: bool = True, detach_keys: str | None = None) -> int:
    """Attach, register the wait, start, stream until the end, and return the exit status."""
    conn = client.hijack(f"/containers/{cid}/attach",
                         query={"stream": True, "stdin": stdin, "stdout": True, "stderr": True,
                                "detachKeys": detach_keys or None},
                         tty=tty)
    with conn:
        waiter = open_wait(client, cid, condition)
        if start:
            try:
                client.post(f"/containers/{cid}/start")
            except EngineError as err:
                waiter.close()
                raise CliError(daemon_message(err), start_exit_code(str(err))) from err
        with proxy_signals(client, cid, sig_proxy and not tty):
            pump(conn, stdin=stdin, on_resize=resizer(client, f"/containers/{cid}/resize"))
    if tty and stdin and still_running(client, cid):
        waiter.close()  # detached with the daemon's keys (ctrl-p ctrl-q): leave it running
        return 0
    return wait_result(waiter)


def still_running(client: EngineClient, cid: str, grace: float = 1.0) -> bool:
    """True if the container keeps running after its streams ended (a detach), allowing
    ``grace`` seconds for an exit that is still being recorded."""
    import time

    deadline = time.monotonic() + grace
    while True:
        try:
            state = client.get(f"/containers/{cid}/json").get("State") or {}
        except EngineError:
            return False  # removed (--rm): it exited
        if not state.get("Running"):
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


# -- commands -----------------------------------------------------------------------------------


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The flags ``run`` and ``create`` share (docker's names)."""
    opts = [
        fw.argument("image"),
        fw.argument("command", nargs=-1, type=fw.UNPROCESSED),
        fw.option("-i", "--interactive", is_flag=True, help="Keep STDIN open."),
        fw.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        fw.option("--name", help="Assign a name to the container."),
        fw.option("--rm", is_flag=True, help="Remove the container when it exits."),
        fw.option("-e", "--env", multiple=True, help="Set environment variables."),
        fw.option("--env-file", multiple=True, help="Read in a file of environment variables."),
        fw.option("-v", "--volume", multiple=True, help="Bind mount a volume."),
        fw.option("--mount", multiple=True, help="Attach a filesystem mount."),
        fw.option("--tmpfs", multiple=True, help="Mount a tmpfs directory."),
        fw.option("-p", "--publish", multiple=True, help="Publish a container's port(s)."),
        fw.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports."),
        fw.option("--network", "--net", "network", help="Connect to a network."),
        fw.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
        fw.option("-w", "--workdir", default="", help="Working directory inside."),
        fw.option("-u", "--user", default="", help="Username or UID (name|uid[:group|gid])."),
        fw.option("--init", is_flag=True, help="Run an init inside the container."),
        fw.option("--restart", default="no", help="Restart policy."),
        fw.option("-l", "--label", multiple=True, help="Set meta data on a container."),
        fw.option("-h", "--hostname", default="", help="Container host name."),
        fw.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        fw.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        fw.option("--privileged", is_flag=True, help="Give extended privileges."),
        fw.option("--read-only", is_flag=True, help="Mount the root filesystem read-only."),
        fw.option("-m", "--memory", help="Memory limit."),
        fw.option("--cpus", help="Number of CPUs."),
        fw.option("--pids-limit", type=int, help="Tune container pids limit (-1 unlimited)."),
        fw.option("--ulimit", multiple=True, help="Ulimit options."),
        fw.option("--security-opt", multiple=True, help="Security options."),
        fw.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping."),
        fw.option("--dns", multiple=True, help="Set custom DNS servers."),
        fw.option("--link", multiple=True, help="Add link to another container."),
        fw.option("--stop-signal", help="Signal to stop the container."),
        fw.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop."),
        fw.option("--shm-size", help="Size of /dev/shm."),
        fw.option("--platform", help="Set platform if server is multi-platform capable."),
        fw.option("--pull", default="missing", help='Pull image before running '
                     '("always", "missing", "never").'),
        fw.option("--expose", multiple=True, help="Expose a port or a range of ports."),
        fw.option("--label-file", multiple=True, help="Read in a file of labels."),
        fw.option("--dns-search", multiple=True, help="Set custom DNS search domains."),
        fw.option("--dns-option", multiple=True, help="Set DNS options."),
        fw.option("--group-add", multiple=True, help="Add additional groups to join."),
        fw.option("--sysctl", multiple=True, help="Sysctl options (key=value)."),
        fw.option("--volumes-from", multiple=True, help="Mount volumes from a container."),
        fw.option("--log-driver", default="", help="Logging driver for the container."),
        fw.option("--log-opt", multiple=True, help="Log driver options (key=value)."),
        fw.option("--health-cmd", help="Command to run to check health."),
        fw.option("--health-interval", help="Time between running the check (e.g. 30s)."),
        fw.option("--health-timeout", help="Maximum time to allow one check to run."),
        fw.option("--health-start-period", help="Start period before counting retries."),
        fw.option("--health-start-interval", help="Time between checks while starting."),
        fw.option("--health-retries", type=int, help="Failures needed to report unhealthy."),
        fw.option("--no-healthcheck", is_flag=True, help="Disable any HEALTHCHECK."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _options(kwargs: dict[str, Any], detach: bool) -> RunOptions:
    tty = bool(kwargs["tty"])
    return RunOptions(detach=detach, console_size=terminal_size() if tty else (0, 0), **kwargs)


@fw.command("run", **_RUN_LIKE)
@engine_command(exit_code=125)
@run_options
@fw.option("-d", "--detach", is_flag=True, help="Run in background and print its ID.")
@fw.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals.")
@fw.option("--detach-keys", default=None, help="Key sequence for detaching (ctrl-p,ctrl-q).")
def run(client: EngineClient, detach: bool, sig_proxy: bool, detach_keys: str | None,
        **kwargs: Any) -> None:
    """Create and run a new container from an image."""
    opts = _options(kwargs, detach)
    if not detach:
        check_tty(opts.tty, opts.interactive)
    req = _request(opts)
    cid = create_container(client, req, opts.image, opts.pull, opts.platform)
    if detach:
        try:
            client.post(f"/containers/{cid}/start")
        except EngineError as err:
            raise CliError(daemon_message(err), start_exit_code(str(err))) from err
        fw.echo(cid)
        return
    code = attach_and_start(client, cid, tty=opts.tty, stdin=opts.interactive,
                            condition="removed" if opts.rm else "next-exit",
                            sig_proxy=sig_proxy, detach_keys=detach_keys)
    raise fw.Exit(code)


def _request(opts: RunOptions) -> CreateRequest:
    try:
        return create_request(opts)
    except OptionError as err:
        raise CliError(str(err), 125) from err


@fw.command("create", **_RUN_LIKE)
@engine_command()  # docker's create exits 1 on daemon errors (125 only for bad flags)
@run_options
def create(client: EngineClient, **kwargs: Any) -> None:
    """Create a new container (printing its ID) without starting it."""
    opts = _options(kwargs, detach=False)
    req = _request(opts)
    fw.echo(create_container(client, req, opts.image, opts.pull, opts.platform))


@fw.command("start")
@engine_command()
@fw.argument("containers", nargs=-1, required=True)
@fw.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@fw.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
def start(client: EngineClient, containers: tuple[str, ...], attach: bool,
          interactive: bool) -> None:
    """Start one or more stopped containers."""
    from pycompose.cli.container_base import for_each

    if attach or interactive:
        if len(containers) > 1:
            raise CliError("you cannot start and attach multiple containers at once")
        info = client.get(f"/containers/{containers[0]}/json")
        config = info.get("Config") or {}
        stdin = interactive and bool(config.get("OpenStdin"))
        code = attach_and_start(client, info["Id"], tty=bool(config.get("Tty")), stdin=stdin,
                                condition="next-exit", sig_proxy=True)
        raise fw.Exit(code)
    for_each(containers, lambda name: client.post(f"/containers/{name}/start"))


@fw.command("attach")
@engine_command()
@fw.argument("container")
@fw.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@fw.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals.")
@fw.option("--detach-keys", default=None, help="Key sequence for detaching (ctrl-p,ctrl-q).")
def attach(client: EngineClient, container: str, no_stdin: bool, sig_proxy: bool,
           detach_keys: str | None) -> None:
    """Attach the terminal to a running container's input and output."""
    info = client.get(f"/containers/{container}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CliError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CliError("You cannot attach to a paused container, unpause it first")
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = not no_stdin and bool(config.get("OpenStdin"))
    check_tty(tty, stdin)
    code = attach_and_start(client, info["Id"], tty=tty, stdin=stdin, condition="not-running",
                            sig_proxy=sig_proxy, start=False, detach_keys=detach_keys)
    raise fw.Exit(code)


@fw.command("exec", interspersed=False)
@engine_command()
@fw.argument("container")
@fw.argument("command", nargs=-1, required=True, type=fw.UNPROCESSED)
@fw.option("-d", "--detach", is_flag=True, help="Detached mode: run in the background.")
@fw.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@fw.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@fw.option("-e", "--env", multiple=True, help="Set environment variables.")
@fw.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@fw.option("-u", "--user", default="", help="Username or UID.")
@fw.option("-w", "--workdir", default="", help="Working directory inside the container.")
@fw.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@fw.option("--detach-keys", default="", help="Key sequence for detaching (ctrl-p,ctrl-q).")
def exec_(client: EngineClient, container: str, command: tuple[str, ...], detach: bool,
          interactive: bool, tty: bool, env: tuple[str, ...], env_file: tuple[str, ...],
          user: str, workdir: str, privileged: bool, detach_keys: str) -> None:
    """Execute a command in a running container."""
    from pycompose.cli.container_parse import parse_env, parse_env_file

    if not detach:
        check_tty(tty, interactive)
    try:
        envs = [line for p in env_file for line in parse_env_file(p, os.environ)]
        envs += parse_env(env, os.environ)
    except OptionError as err:
        raise CliError(str(err), 1) from err
    body: dict[str, Any] = {
        "User": user, "Privileged": privileged, "Tty": tty,
        "AttachStdin": interactive and not detach, "AttachStderr": not detach,
        "AttachStdout": not detach, "Detach": detach, "DetachKeys": detach_keys,
        "Env": envs or None, "WorkingDir": workdir, "Cmd": list(command),
    }
    if tty:
        body["ConsoleSize"] = list(terminal_size())
    exec_id = client.post(f"/containers/{container}/exec", body=body)["Id"]
    if detach:
        client.post(f"/exec/{exec_id}/start", body={"Detach": True, "Tty": tty})
        return
    with client.hijack(f"/exec/{exec_id}/start", body={"Detach": False, "Tty": tty},
                       tty=tty) as conn:
        pump(conn, stdin=interactive, on_resize=resizer(client, f"/exec/{exec_id}/resize"))
    info = client.get(f"/exec/{exec_id}/json")
    raise fw.Exit(int(info.get("ExitCode") or 0))


def pump_frames(resp: ClientResponse, *, tty: bool, stdout_fd: int, stderr_fd: int,
                write: Callable[[int, Any], int]) -> None:
    """Copy a logs stream to the two descriptors (demultiplexed unless ``tty``)."""
    from pycompose.engine.api.streams import STDERR

    for stream, data in resp.iter_frames(tty=tty):
        fd = stderr_fd if stream == STDERR else stdout_fd
        view = memoryview(data)
        while view:
            view = view[write(fd, view):]
