"""The ``pycompose`` command: a click group whose subcommands load on demand.

Start-up time matters (``pycompose config`` on a small file should take well under
100 ms), so each subcommand lives in its own module and is imported only when used.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from pycompose.errors import PycomposeError

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
    "attach": "pycompose.cli.container_run:attach",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is invoked."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pycompose", prog_name="pycompose")
@click.option("-f", "--file", "files", multiple=True, help="Compose file(s); '-' reads stdin.")
@click.option("-p", "--project-name", help="Project name.")
@click.option("--project-directory", help="Alternate working directory.")
@click.option("--profile", "profiles", multiple=True, help="Profile(s) to enable.")
@click.option("--env-file", "env_files", multiple=True, help="Alternate environment file(s).")
@click.pass_context
def cli(
    ctx: click.Context,
    files: tuple[str, ...],
    project_name: str | None,
    project_directory: str | None,
    profiles: tuple[str, ...],
    env_files: tuple[str, ...],
) -> None:
    """Define and run multi-container applications, on pycompose's own engine."""
    from pycompose.compose.discovery import ProjectOptions

    ctx.obj = ProjectOptions(
        files=files,
        project_name=project_name,
        project_directory=project_directory,
        profiles=tuple(p for value in profiles for p in value.split(",") if p),
        env_files=env_files,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning any PycomposeError into one line and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="pycompose", standalone_mode=False)
    except PycomposeError as err:
        click.echo(str(err), err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return 2 if isinstance(err, click.UsageError) else err.exit_code
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
