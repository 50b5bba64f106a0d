"""Semantic checks on a normalised project: what the schema cannot see.

Each check is a generator of :class:`ComposeError`; :func:`check_project` runs them all
and raises every problem at once. The input is the canonical dict that ``normalize``
produces (long-form ports, volumes, depends_on, networks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pycompose.compose.errors import ComposeError, ComposeErrors

Project = Mapping[str, Any]
Check = Callable[[Project], Iterator[ComposeError]]


def _services(project: Project) -> Mapping[str, Mapping[str, Any]]:
    services = project.get("services") or {}
    assert isinstance(services, Mapping)
    return services


def service_edges(service: Mapping[str, Any]) -> Iterator[tuple[str, str, tuple[str | int, ...]]]:
    """Yield (kind, other service, path below the service) for every service reference."""
    for dep in service.get("depends_on") or {}:
        yield "depends_on", dep, ("depends_on", dep)
    for index, link in enumerate(service.get("links") or ()):
        yield "links", str(link).split(":", 1)[0], ("links", index)
    mode = service.get("network_mode")
    if isinstance(mode, str) and mode.startswith("service:"):
        yield "network_mode", mode.split(":", 1)[1], ("network_mode",)
    for index, source in enumerate(service.get("volumes_from") or ()):
        name = str(source)
        if name.startswith("container:"):
            continue
        if name.startswith("service:"):
            name = name.split(":", 1)[1]
        yield "volumes_from", name.split(":", 1)[0], ("volumes_from", index)


def find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """Return one cycle as a path ``[a, b, a]`` if the directed graph has any.

    A small iterative DFS: ``pycompose config`` must not pay for importing networkx.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for root in sorted(graph):
        if color[root] != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        color[root] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = black
                stack.pop()
            elif color.get(child, black) == grey:
                trail = [n for n, _ in stack]
                return [*trail[trail.index(child) :], child]
            elif color.get(child) == white:
                color[child] = grey
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def check_references(project: Project) -> Iterator[ComposeError]:
    services = _services(project)
    for name, service in services.items():
        for _kind, other, path in service_edges(service):
            if other not in services:
                yield ComposeError(
                    f'service "{name}" depends on undefined service "{other}"',
                    path=("services", name, *path),
                )


def check_cycles(project: Project) -> Iterator[ComposeError]:
    services = _services(project)
    graph = {
        name: [other for _k, other, _p in service_edges(svc) if other in services]
        for name, svc in services.items()
    }
    cycle = find_cycle(graph)
    if cycle:
        yield ComposeError(
            f"dependency cycle detected: {' -> '.join(cycle)}", path=("services", cycle[0])
        )


def check_resources(project: Project) -> Iterator[ComposeError]:
    """Networks, volumes, secrets and configs a service uses must be declared."""
    declared = {kind: set(project.get(kind) or {}) for kind in ("networks", "volumes")}
    declared["secrets"] = set(project.get("secrets") or {})
    declared["configs"] = set(project.get("configs") or {})
    for name, service in _services(project).items():
        for net in service.get("networks") or {}:
            if net not in declared["networks"]:
                yield ComposeError(
                    f'service "{name}" refers to undefined network {net}',
                    path=("services", name, "networks", net),
                )
        for index, volume in enumerate(service.get("volumes") or ()):
            if not isinstance(volume, Mapping) or volume.get("type") != "volume":
                continue
            source = volume.get("source")
            if source and source not in declared["volumes"]:
                yield ComposeError(
                    f'service "{name}" refers to undefined volume {source}',
                    path=("services", name, "volumes", index),
                )
        for kind, singular in (("secrets", "secret"), ("configs", "config")):
            for index, ref in enumerate(service.get(kind) or ()):
                source = ref.get("source") if isinstance(ref, Mapping) else ref
                if source not in declared[kind]:
                    yield ComposeError(
                        f'service "{name}" refers to undefined {singular} {source}',
                        path=("services", name, kind, index),
                    )


def check_network_mode(project: Project) -> Iterator[ComposeError]:
    for name, service in _services(project).items():
        if service.get("network_mode") and service.get("networks"):
            yield ComposeError(
                f"service {name} declares mutually exclusive `network_mode` and `networks`",
                path=("services", name, "network_mode"),
            )


def check_images(project: Project) -> Iterator[ComposeError]:
    for name, service in _services(project).items():
        # A provider service (compose's `provider:`) is run by a plugin, not from an image.
        if not service.get("image") and not service.get("build") and not service.get("provider"):
            yield ComposeError(
                f'service "{name}" has neither an image nor a build context specified',
                path=("services", name),
            )


def check_dockerfiles(project: Project) -> Iterator[ComposeError]:
    for name, service in _services(project).items():
        build = service.get("build")
        if not isinstance(build, Mapping):
            continue
        if build.get("dockerfile") and build.get("dockerfile_inline"):
            yield ComposeError(
                f'service "{name}" declares mutually exclusive dockerfile and dockerfile_inline',
                path=("services", name, "build"),
            )


def check_container_names(project: Project) -> Iterator[ComposeError]:
    owners: dict[str, str] = {}
    for name, service in _services(project).items():
        cname = service.get("container_name")
        if not cname:
            continue
        replicas = (service.get("deploy") or {}).get("replicas")
        scale = service.get("scale")
        if (isinstance(replicas, int) and replicas > 1) or (isinstance(scale, int) and scale > 1):
            yield ComposeError(
                f'container_name "{cname}" cannot be used with more than one replica: '
                "container names must be unique",
                path=("services", name, "container_name"),
            )
        if cname in owners:
            yield ComposeError(
                f'container name "{cname}" is already used by service "{owners[cname]}"',
                path=("services", name, "container_name"),
            )
        else:
            owners[cname] = name


def _host_ports(port: Mapping[str, Any]) -> tuple[str, str, list[int]]:
    published = str(port.get("published") or "")
    if not published:
        return "", "", []
    first, _, last = published.partition("-")
    try:
        numbers = list(range(int(first), int(last or first) + 1))
    except ValueError:
        return "", "", []
    return str(port.get("host_ip") or ""), str(port.get("protocol") or "tcp"), numbers


def check_published_ports(project: Project) -> Iterator[ComposeError]:
    """Two services cannot publish the same host port: ``up`` would fail half-way."""
    taken: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for name, service in _services(project).items():
        for index, port in enumerate(service.get("ports") or ()):
            if not isinstance(port, Mapping):
                continue
            host_ip, proto, numbers = _host_ports(port)
            for number in numbers:
                for other_ip, other in taken.get((proto, number), ()):
                    wildcard = host_ip in ("", "0.0.0.0", "::") or other_ip in (
                        "",
                        "0.0.0.0",
                        "::",
                    )
                    if other != name and (wildcard or other_ip == host_ip):
                        yield ComposeError(
                            f'host port {number}/{proto} is already published by service "{other}"',
                            path=("services", name, "ports", index),
                        )
                taken.setdefault((proto, number), []).append((host_ip, name))


CHECKS: tuple[Check, ...] = (
    check_images,
    check_references,
    check_cycles,
    check_resources,
    check_network_mode,
    check_dockerfiles,
    check_container_names,
    check_published_ports,
)


def check_project(project: Project) -> None:
    """Run every check; raise :class:`ComposeErrors` listing all problems found."""
    errors = [error for check in CHECKS for error in check(project)]
    if errors:
        raise ComposeErrors(errors)
