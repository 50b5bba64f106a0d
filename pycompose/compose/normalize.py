"""The normalise stage: a merged compose dict to the canonical form ``config`` prints.

``normalize`` turns every short syntax into compose's long form (ports, volumes,
depends_on, environment, build, healthcheck...), fills compose's defaults, makes paths
absolute, reads ``env_file``/``label_file`` into ``environment``/``labels``, adds the
implicit dependencies (links, ``service:`` namespaces, ``volumes_from``) and the ``default``
network, names networks/volumes/secrets/configs ``<project>_<key>`` unless external or
named, and drops top-level resources no service uses, as ``docker compose config`` does.

The result matches ``docker compose config`` (v2.40) key for key. What compose's printer
does on top is left to ours: it escapes ``$`` as ``$$`` in every printed string (unless
``--no-interpolate``), and its JSON (not its YAML) leaves out the top-level ``models`` and
every ``x-*`` key below the top level (in services, mounts, ports, networks, volumes...).
Key order is not compose's (it prints Go struct order); shapes and values are.

Every invalid value is reported at once, as a ``ComposeErrors`` naming dotted paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycompose.compose.errors import ComposeError, ComposeErrors
from pycompose.compose.normalize_files import ReadEnvFile
from pycompose.compose.normalize_service import ServiceContext, normalize_service
from pycompose.compose.normalize_values import at, mapping, omit_empty, to_bool, type_name
from pycompose.compose.paths import resolve_relative_paths

RESOURCE_KINDS = ("networks", "volumes", "secrets", "configs", "models")
SERVICE_PREFIX = "service:"
# Namespaces that may name another service (``network_mode: service:db``): each one is an
# implicit dependency that restarts with its target.
NAMESPACE_KEYS = ("network_mode", "ipc", "pid", "uts", "cgroup")
# Where a secret or config compose creates takes its content from (exactly one of them).
FILE_SOURCES = {
    "secrets": ("file", "environment"),
    "configs": ("file", "environment", "content"),
}

__all__ = ["ReadEnvFile", "add_implicit_links", "normalize"]


def normalize(
    data: dict[str, Any],
    *,
    project_name: str,
    project_dir: str,
    environ: Mapping[str, str],
    read_env_file: ReadEnvFile | None = None,
    defaults: bool = True,
) -> dict[str, Any]:
    """Return the canonical form of a merged project dict (the input is not modified).

    ``environ`` is the project environment (process environment over ``.env``): bare
    ``environment`` keys and build args take their values from it, and it is what env files
    are interpolated with. ``read_env_file(path, environ)`` parses one env file; by default
    the loader's dotenv reader.

    ``defaults=False`` is ``config --no-normalize``: the same canonical shapes, without what
    compose infers (the ``default`` network, resource names, implicit dependencies, the
    default Dockerfile, build args from the environment).
    """
    data = resolve_relative_paths(data, project_dir)
    read_env_file = read_env_file or _default_env_reader
    errors: list[ComposeError] = []
    services = _normalize_services(data.get("services"), project_dir, environ, read_env_file,
                                   errors, defaults)
    out: dict[str, Any] = {"name": project_name, "services": services}
    for kind in RESOURCE_KINDS:
        resources = _normalize_resources(kind, data.get(kind), project_name, errors, defaults)
        used = _used(kind, services)
        if defaults and kind == "networks" and "default" in used and "default" not in resources:
            resources["default"] = {"name": f"{project_name}_default", "ipam": {}}
        kept = {key: value for key, value in resources.items() if key in used}
        if kept:
            out[kind] = kept
    for key, value in data.items():
        if key not in out and key not in RESOURCE_KINDS and key != "version":
            out[key] = value
    if errors:
        raise ComposeErrors(errors)
    return out


def _default_env_reader(path: str, environ: Mapping[str, str]) -> dict[str, str]:
    # Imported here: the loader imports this module, and only env_file needs the reader.
    from pycompose.compose.loader import read_env_file

    return read_env_file(path, environ)


def _normalize_services(
    raw: Any,
    project_dir: str,
    environ: Mapping[str, str],
    read_env_file: ReadEnvFile,
    errors: list[ComposeError],
    defaults: bool,
) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(ComposeError(f"must be a mapping, not {type_name(raw)}", path=("services",)))
        return {}
    services: dict[str, Any] = {}
    for name, service in raw.items():
        if not isinstance(service, dict):
            errors.append(ComposeError(f"must be a mapping, not {type_name(service)}",
                                       path=("services", name)))
            continue
        ctx = ServiceContext(project_dir, environ, read_env_file, ("services", name), errors,
                             defaults)
        normalized = normalize_service(service, ctx)
        if defaults:
            add_implicit_links(normalized)
        services[name] = normalized
    return services


def add_implicit_links(service: dict[str, Any]) -> None:
    """Default network attachment and the dependencies compose infers from references."""
    # A provider service runs no container, so it joins no network.
    if not service.get("networks") and not service.get("network_mode") and (
        "provider" not in service
    ):
        service["networks"] = {"default": None}
    implied: dict[str, dict[str, Any]] = {}
    restart = {"condition": "service_started", "restart": True, "required": True}
    for link in service.get("links", []):
        implied.setdefault(link.split(":", 1)[0], dict(restart))
    for key in NAMESPACE_KEYS:
        ref = service.get(key)
        if isinstance(ref, str) and ref.startswith(SERVICE_PREFIX):
            implied.setdefault(ref[len(SERVICE_PREFIX):], dict(restart))
    for source in service.get("volumes_from", []):
        if not source.startswith("container:"):
            implied.setdefault(source.split(":", 1)[0],
                               {"condition": "service_started", "required": True})
    if implied:
        depends_on = service.setdefault("depends_on", {})
        for name, dependency in implied.items():
            depends_on.setdefault(name, dependency)


def _used(kind: str, services: dict[str, Any]) -> set[str]:
    """Names of the resources of ``kind`` that at least one service refers to."""
    used: set[str] = set()
    for service in services.values():
        if kind in ("networks", "models"):
            used.update(service.get(kind) or {})
        elif kind == "volumes":
            used.update(v["source"] for v in service.get("volumes", [])
                        if isinstance(v, dict) and v.get("type") == "volume" and v.get("source"))
        else:
            mounts = list(service.get(kind, []))
            if kind == "secrets" and isinstance(service.get("build"), dict):
                mounts += service["build"].get("secrets", [])
            used.update(m["source"] for m in mounts if isinstance(m, dict) and "source" in m)
    return used


def _normalize_resources(
    kind: str, raw: Any, project_name: str, errors: list[ComposeError], defaults: bool = True
) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(ComposeError(f"must be a mapping, not {type_name(raw)}", path=(kind,)))
        return {}
    out: dict[str, Any] = {}
    for key, entry in raw.items():
        try:
            out[key] = _normalize_resource(kind, key, entry or {}, project_name, defaults)
        except ComposeError as err:
            errors.append(ComposeError(err.message, path=(kind, key, *err.path)))
    return out


def _normalize_resource(
    kind: str, key: str, entry: Any, project_name: str, defaults: bool = True
) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ComposeError(f"must be a mapping, not {type_name(entry)}")
    out = dict(entry)
    if kind == "models":
        return out  # models have no engine-side name
    external = out.get("external")
    if isinstance(external, dict):
        # Deprecated ``external: {name: x}``: the name moves up and external becomes true.
        if external.get("name") is not None:
            if out.get("name"):
                raise ComposeError(f"can't use both '{kind}.external.name' (deprecated) "
                                   f"and '{kind}.name'")
            out["name"] = str(external["name"])
        out["external"] = True
    elif external is not None:
        out["external"] = to_bool(external)
    if kind in FILE_SOURCES and not out.get("external"):
        _check_file_source(kind, out)
    if kind == "volumes" and out.get("external"):
        # compose refuses to configure a volume it does not create (networks it allows).
        for field in ("driver", "driver_opts", "labels"):
            if out.get(field):
                raise ComposeError(f'conflicting parameters "external" and "{field}" specified')
    if defaults and not out.get("name"):
        out["name"] = key if out.get("external") else f"{project_name}_{key}"
    for field in ("labels", "driver_opts"):
        if out.get(field) is not None:
            out[field] = mapping(out[field])
    keep: frozenset[str] = frozenset()
    if kind == "networks":
        out["ipam"] = at("ipam", _ipam, out.get("ipam") or {})
        for flag in ("internal", "attachable", "enable_ipv6", "enable_ipv4"):
            if flag in out:
                out[flag] = to_bool(out[flag])
        keep = frozenset({"ipam", "enable_ipv6", "enable_ipv4"})
    return omit_empty(out, keep=keep)


def _check_file_source(kind: str, entry: dict[str, Any]) -> None:
    """A secret or config that compose creates needs exactly one place to read it from."""
    sources = FILE_SOURCES[kind]
    given = [s for s in sources if entry.get(s) is not None]
    names = "|".join(sources)
    if not given:
        raise ComposeError(f"one of {names} must be set")
    if len(given) > 1:
        raise ComposeError(f"{names} attributes are mutually exclusive")


def _ipam(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ComposeError(f"must be a mapping, not {type_name(raw)}")
    out = dict(raw)
    if isinstance(out.get("config"), list):
        out["config"] = [_ipam_pool(pool) for pool in out["config"]]
    # compose's model has no place for ipam.options (the schema allows them): its config
    # output leaves them out, and so does ours, so both describe the same network.
    out.pop("options", None)
    return omit_empty(out)


def _ipam_pool(pool: Any) -> Any:
    if not isinstance(pool, dict):
        return pool
    out = dict(pool)
    if out.get("aux_addresses") is not None:
        out["aux_addresses"] = mapping(out["aux_addresses"])
    return omit_empty(out)
