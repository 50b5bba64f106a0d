"""``pycompose config``: print the canonical project, as ``docker compose config`` does."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from pycompose.cli import framework as fw
from pycompose.compose.discovery import ProjectOptions


def _dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    from pycompose.compose.yamlimport import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(
        data,
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )
    return text.rstrip("\n")


def _images(name: str, services: dict[str, Any]) -> list[str]:
    return [svc.get("image") or f"{name}-{svc_name}" for svc_name, svc in sorted(services.items())]


def _hashes(selection: str, services: dict[str, Any]) -> list[str]:
    from pycompose.compose.errors import ComposeError
    from pycompose.compose.hashing import service_hash

    wanted = sorted(services) if selection == "*" else [s.strip() for s in selection.split(",")]
    lines = []
    for name in wanted:
        if name not in services:
            raise ComposeError(f"no such service: {name}")
        lines.append(f"{name} {service_hash(services[name])}")
    return lines


@fw.command("config")
@fw.argument("services", nargs=-1)
@fw.option("--format", "fmt", choices=["yaml", "json"], default="yaml")
@fw.option("-q", "--quiet", is_flag=True, help="Only validate the configuration.")
@fw.option("--services", "list_services", is_flag=True, help="Print the service names.")
@fw.option("--volumes", "list_volumes", is_flag=True, help="Print the volume names.")
@fw.option("--networks", "list_networks", is_flag=True, help="Print the network names.")
@fw.option("--profiles", "list_profiles", is_flag=True, help="Print the profile names.")
@fw.option("--images", "list_images", is_flag=True, help="Print the image names.")
@fw.option("--hash", "hash_services", help='Print the config hash of services ("*" for all).')
@fw.option("--environment", "list_environment", is_flag=True, help="Print the environment.")
@fw.option("--no-interpolate", is_flag=True, help="Do not interpolate variables.")
@fw.option("--no-normalize", is_flag=True, help="Do not normalise to the canonical form.")
@fw.option("--no-path-resolution", is_flag=True, help="Keep relative paths as written.")
@fw.option("--no-consistency", is_flag=True, help="Skip the semantic checks.")
@fw.option("-o", "--output", help="Write to this file.")
@fw.pass_obj
def config(
    options: ProjectOptions,
    services: tuple[str, ...],
    fmt: str,
    quiet: bool,
    list_services: bool,
    list_volumes: bool,
    list_networks: bool,
    list_profiles: bool,
    list_images: bool,
    hash_services: str | None,
    list_environment: bool,
    no_interpolate: bool,
    no_normalize: bool,
    no_path_resolution: bool,
    no_consistency: bool,
    output: str | None,
) -> int:
    """Parse, resolve and render the compose file in canonical form."""
    from pycompose.compose.loader import LoadOptions, load

    if output and os.path.isdir(output):
        raise fw.UsageError(f"argument -o/--output: {output!r} is a directory")

    def warn(message: str) -> None:
        fw.echo(f"WARN {message}", err=True)

    # compose lists services, volumes, networks and hashes for the whole project, whatever
    # services are named; the other outputs are narrowed to the named ones.
    whole_project = list_services or list_volumes or list_networks or hash_services is not None
    project = load(
        options,
        LoadOptions(
            interpolate=not no_interpolate,
            normalize=not no_normalize,
            resolve_paths=not no_path_resolution,
            consistency=not no_consistency,
            enabled_services=() if whole_project else services,
        ),
        warn=warn,
    )
    data = project.data
    all_services: dict[str, Any] = data.get("services") or {}
    lines: list[str] | None = None
    if list_services:
        lines = sorted(data.get("services") or {})
    elif list_volumes:
        lines = list(data.get("volumes") or {})
    elif list_networks:
        lines = list(data.get("networks") or {})
    elif list_profiles:
        lines = sorted(project.all_profiles)
    elif list_images:
        lines = _images(project.name, data.get("services") or {})
    elif hash_services is not None:
        lines = _hashes(hash_services, all_services)
    elif list_environment:
        lines = [f"{k}={v}" for k, v in sorted(project.environment.items())]
    if quiet:
        return 0
    if lines is None and not no_interpolate:
        # The uninterpolated model is printed as it is; the project with compose's conventions.
        from pycompose.compose.normalize_print import escape_dollars, json_view, yaml_view

        data = escape_dollars(data)
        data = json_view(data) if fmt == "json" else yaml_view(data)
    text = "\n".join(lines) if lines is not None else _dump(data, fmt)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        sys.stdout.write(text + "\n" if text else "")
    return 0
