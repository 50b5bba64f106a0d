"""Profiles: which services a run includes.

A service without ``profiles`` is always enabled; one with profiles is enabled when one of
them is active (``*`` activates every profile). Facts checked against docker compose
v2.40.3:

* naming a service explicitly (``up tool``, ``run tool``) activates *all* of that
  service's profiles, which may enable other services too;
* an enabled service that needs a disabled one (``depends_on`` unless ``required:
  false``, ``links``, ``volumes_from``, ``network_mode: service:x``) is an error; compose
  does not enable the dependency. Profiles from ``--profile`` are checked for every
  enabled service; the profiles an explicit name activated only for the named services
  and their dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pycompose.compose.errors import ComposeError

ALL = "*"


def service_profiles(service: Any) -> list[str]:
    """The profiles a raw service declares (none for a malformed service)."""
    if not isinstance(service, dict):
        return []
    declared = service.get("profiles") or []
    return [str(p) for p in declared] if isinstance(declared, list) else [str(declared)]


def is_enabled(service: Any, active: Iterable[str]) -> bool:
    """Whether a raw service runs when the ``active`` profiles are selected."""
    declared = service_profiles(service)
    if not declared:
        return True
    selected = set(active)
    return ALL in selected or any(p in selected for p in declared)


def list_profiles(data: Mapping[str, Any]) -> list[str]:
    """Every profile some service declares, sorted (``config --profiles``)."""
    found = {p for s in _services(data).values() for p in service_profiles(s)}
    return sorted(found)


def dependencies(service: Any) -> Iterator[tuple[str, str]]:
    """(kind, service name) for each service this one needs to exist."""
    if not isinstance(service, dict):
        return
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {str(n): {} for n in depends}
    for name, spec in depends.items():
        if not (isinstance(spec, dict) and spec.get("required") is False):
            yield "depends_on", str(name)
    for link in service.get("links") or []:
        yield "links", str(link).split(":", 1)[0]
    for source in service.get("volumes_from") or []:
        if not str(source).startswith("container:"):
            yield "volumes_from", str(source).split(":", 1)[0]
    mode = service.get("network_mode")
    if isinstance(mode, str) and mode.startswith("service:"):
        yield "network_mode", mode.removeprefix("service:")


def apply_profiles(
    data: Mapping[str, Any],
    active: Iterable[str],
    enabled_services: Iterable[str] = (),
    *,
    file: str | None = None,
) -> dict[str, Any]:
    """Keep the services enabled by ``active`` profiles and by ``enabled_services`` names.

    Returns a new dict (other sections untouched). Raises :class:`ComposeError` when an
    enabled service needs a disabled or undefined one, or a named service does not exist.
    """
    services = _services(data)
    base = set(active)
    _check(services, [n for n, s in services.items() if is_enabled(s, base)], base, file)
    named = list(dict.fromkeys(enabled_services))
    profiles = set(base)
    for name in named:
        if name not in services:
            raise ComposeError(f"no such service: {name}", file=file, path=("services",))
        if not is_enabled(services[name], profiles):
            profiles.update(service_profiles(services[name]))
    _check(services, named, profiles, file)
    kept = {n: s for n, s in services.items() if is_enabled(s, profiles)}
    return {**data, "services": kept} if "services" in data else dict(data)


def select_services(data: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Keep only the ``names`` services and, transitively, the services they depend on.

    ``config web`` prints web and what it needs, as compose does; the resources nothing
    selected uses are dropped later, by normalisation.
    """
    services = _services(data)
    kept: dict[str, Any] = {}
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in kept or name not in services:
            continue
        kept[name] = services[name]
        todo.extend(needed for _, needed in dependencies(services[name]))
    ordered = {n: s for n, s in services.items() if n in kept}
    return {**data, "services": ordered} if "services" in data else dict(data)


def _check(services: dict[str, Any], roots: list[str], active: set[str], file: str | None) -> None:
    """Every service reachable from ``roots`` needs only services enabled by ``active``."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for kind, needed in dependencies(services[name]):
            if needed in services and is_enabled(services[needed], active):
                todo.append(needed)
                continue
            raise ComposeError(
                _missing(name, needed, services.get(needed)),
                file=file,
                path=("services", name, kind),
            )


def _missing(name: str, needed: str, target: Any) -> str:
    if target is None:
        return f'service "{name}" depends on undefined service "{needed}"'
    wanted = ", ".join(service_profiles(target))
    return (
        f'service "{name}" depends on service "{needed}", which is disabled: '
        f"enable one of its profiles ({wanted})"
    )


def _services(data: Mapping[str, Any]) -> dict[str, Any]:
    services = data.get("services")
    return services if isinstance(services, dict) else {}
