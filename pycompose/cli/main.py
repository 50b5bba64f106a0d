"""The ``pycompose`` command: a group whose subcommands load on demand.

Start-up time matters (``pycompose config`` on a small file should take well under
100 ms), so each subcommand lives in its own module and is imported only when used.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from pycompose import __version__
from pycompose.cli import framework as fw
from pycompose.errors import PycomposeError

if TYPE_CHECKING:
    from pycompose.compose.discovery import ProjectOptions

# name -> "module:attribute"; the module is imported only when the command runs.
COMMANDS: dict[str, str] = {
    "config": "pycompose.cli.config_cmd:config",
    "engine": "pycompose.cli.engine_cmd:engine",
    "image": "pycompose.cli.image_cmd:image",
    "network": "pycompose.cli.network_cmd:network",
    "images": "pycompose.cli.image_cmd:ls",
    "pull": "pycompose.cli.image_cmd:pull",
    "push": "pycompose.cli.image_cmd:push",
    "tag": "pycompose.cli.image_cmd:tag",
    "rmi": "pycompose.cli.image_cmd:rm",
    "login": "pycompose.cli.image_cmd:login",
    "logout": "pycompose.cli.image_cmd:logout",
    "volume": "pycompose.cli.volume_cmd:volume",
    "container": "pycompose.cli.container_cmd:container",
    "run": "pycompose.cli.container_run:run",
    "create": "pycompose.cli.container_run:create",
    "start": "pycompose.cli.container_run:start",
    "exec": "pycompose.cli.container_run:exec_",
    "stop": "pycompose.cli.container_cmd:stop",
    "restart": "pycompose.cli.container_cmd:restart",
    "kill": "pycompose.cli.container_cmd:kill",
    "rm": "pycompose.cli.container_cmd:rm",
    "ps": "pycompose.cli.container_ps:ps",
    "logs": "pycompose.cli.container_cmd:logs",
    "top": "pycompose.cli.container_ps:top",
    "inspect": "pycompose.cli.container_ps:any_inspect",
    "wait": "pycompose.cli.container_cmd:wait",
    "pause": "pycompose.cli.container_cmd:pause",
    "unpause": "pycompose.cli.container_cmd:unpause",
    "cp": "pycompose.cli.container_files:cp",
    "export": "pycompose.cli.container_files:export",
    "commit": "pycompose.cli.container_files:commit",
    "rename": "pycompose.cli.container_cmd:rename",
    "port": "pycompose.cli.container_port:port",
    "attach": "pycompose.cli.container_run:attach",
}


@fw.group("pycompose", lazy=COMMANDS, version=__version__)
@fw.option("-f", "--file", "files", multiple=True, help="Compose file(s); '-' reads stdin.")
@fw.option("-p", "--project-name", help="Project name.")
@fw.option("--project-directory", help="Alternate working directory.")
@fw.option("--profile", "profiles", multiple=True, help="Profile(s) to enable.")
@fw.option("--env-file", "env_files", multiple=True, help="Alternate environment file(s).")
def cli(
    files: tuple[str, ...],
    project_name: str | None,
    project_directory: str | None,
    profiles: tuple[str, ...],
    env_files: tuple[str, ...],
) -> ProjectOptions:
    """Define and run multi-container applications, on pycompose's own engine."""
    from pycompose.compose.discovery import ProjectOptions

    return ProjectOptions(
        files=files,
        project_name=project_name,
        project_directory=project_directory,
        profiles=tuple(p for value in profiles for p in value.split(",") if p),
        env_files=env_files,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning any PycomposeError into one line and an exit code.

    Called without ``argv`` (the installed command, ``python -m``) it ends the process itself
    when it safely can (see :func:`exit_now`); with ``argv`` (tests, embedding) it returns."""
    try:
        code = fw.run(cli, argv, "pycompose")
    except PycomposeError as err:
        fw.echo(str(err), err=True)
        code = err.exit_code
    except KeyboardInterrupt:
        code = 130
    if argv is None:
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """End the process with ``code`` without the interpreter's teardown, which frees every
    module and object one by one (about 10 ms: a sixth of a ``container run --rm``).

    What a normal exit would still do is done first: atexit handlers, then flushing stdout
    and stderr. Returns (so the caller exits normally) when another thread still runs, which
    a normal exit would wait for, or when flushing fails, which it would report."""
    import atexit
    import os
    import threading

    if threading.active_count() > 1 or not _flushed():
        return
    atexit._run_exitfuncs()
    # As the interpreter does when its final flush fails: status 120.
    os._exit(code if _flushed() else 120)


def _flushed() -> bool:
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe, or a closed stream
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
