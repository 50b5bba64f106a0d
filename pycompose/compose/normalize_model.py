"""The uninterpolated model ``config --no-interpolate`` prints, as docker compose does.

Without interpolation compose cannot build its typed project, so it prints the merged
model with only its structural rewrites applied: the short syntaxes that have a long form
(ports, volumes, depends_on, build, env_file, secrets, devices, networks...) take it, the
defaults of those long forms are filled in, paths are absolute, services get the
``default`` network and the dependencies links and ``service:`` references imply, and
top-level resources get their engine-side names. Everything else keeps the value and type
it was written with (``"1m"``, ``1.5G``, ``KEY=value`` lists), profiles are not applied
and unused resources stay. Nothing here validates values: they may hold ``${VARIABLES}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize import RESOURCE_KINDS, add_implicit_links
from pycompose.compose.normalize_ports import normalize_port
from pycompose.compose.normalize_values import mapping
from pycompose.compose.normalize_volumes import normalize_device
from pycompose.compose.paths import (
    absolute_path,
    clean_path,
    is_remote_context,
    parse_volume_spec,
)

DEFAULT_CONDITION = "service_started"
# compose renames this pull policy in its model (the spec spells it both ways).
PULL_POLICY_ALIASES = {"if_not_present": "missing"}


def model_view(data: dict[str, Any], *, project_name: str, project_dir: str) -> dict[str, Any]:
    """The merged (uninterpolated) project in compose's model form."""
    services = {
        name: _service(service, project_dir) if isinstance(service, dict) else service
        for name, service in (data.get("services") or {}).items()
    }
    for service in services.values():
        if isinstance(service, dict):
            _implicit_links(service)
    out: dict[str, Any] = {"name": project_name, "services": services}
    for kind in RESOURCE_KINDS:
        declared = data.get(kind)
        resources = {
            key: _resource(key, entry, project_name, kind)
            for key, entry in (declared.items() if isinstance(declared, dict) else ())
        }
        if kind == "networks" and "default" not in resources and _uses_default(services):
            resources["default"] = {"name": f"{project_name}_default"}
        if resources:
            out[kind] = resources
    for key, value in data.items():
        if key not in out and key not in RESOURCE_KINDS and key not in ("version", "include"):
            out[key] = value
    return out


def _implicit_links(service: dict[str, Any]) -> None:
    """As in the project, except that compose's model spells ``restart: false`` for the
    dependency a ``volumes_from`` implies."""
    explicit = set(service.get("depends_on") or {})
    add_implicit_links(service)
    for source in service.get("volumes_from") or []:
        name = str(source).split(":", 1)[0]
        entry = (service.get("depends_on") or {}).get(name)
        if name not in explicit and isinstance(entry, dict):
            entry.setdefault("restart", False)


def _uses_default(services: dict[str, Any]) -> bool:
    return any(
        isinstance(s, dict) and "default" in (s.get("networks") or {}) for s in services.values()
    )


def _resource(key: str, entry: Any, project_name: str, kind: str) -> dict[str, Any]:
    out = dict(entry) if isinstance(entry, dict) else {}
    if kind == "models":
        return out
    external = out.get("external")
    if isinstance(external, dict):
        # Deprecated ``external: {name: x}``: the name moves up.
        if external.get("name") is not None and not out.get("name"):
            out["name"] = external["name"]
        out["external"] = True
    if not out.get("name"):
        out["name"] = key if out.get("external") else f"{project_name}_{key}"
    return out


def _service(raw: dict[str, Any], project_dir: str) -> dict[str, Any]:
    out = dict(raw)
    for key, convert in _CONVERTERS.items():
        if out.get(key) is not None:
            out[key] = convert(out[key], project_dir)
    policy = out.get("pull_policy")
    if isinstance(policy, str):
        out["pull_policy"] = PULL_POLICY_ALIASES.get(policy, policy)
    return out


def _build(value: Any, project_dir: str) -> Any:
    out = {"context": value} if isinstance(value, str) else dict(value)
    context = out.get("context") or "."
    if isinstance(context, str) and not is_remote_context(context):
        context = absolute_path(context, project_dir)
    out["context"] = context
    if not out.get("dockerfile") and not out.get("dockerfile_inline"):
        out["dockerfile"] = "Dockerfile"
    if "args" in out:
        out["args"] = _args(out["args"])
    if isinstance(out.get("additional_contexts"), list):
        out["additional_contexts"] = mapping(out["additional_contexts"])
    if isinstance(out.get("ssh"), list):
        out["ssh"] = mapping(out["ssh"], bare=None)
    return out


def _args(value: Any) -> Any:
    """Args without a value are dropped (list or map form kept); none left is null."""
    if isinstance(value, dict):
        kept: Any = {k: v for k, v in value.items() if v is not None}
    elif isinstance(value, list):
        kept = [item for item in value if "=" in str(item)]
    else:
        return value
    return kept or None


def _depends_on(value: Any, project_dir: str) -> Any:
    if isinstance(value, list):
        value = {str(name): {} for name in value}
    if not isinstance(value, dict):
        return value
    out = {}
    for name, spec in value.items():
        entry = dict(spec) if isinstance(spec, dict) else {}
        entry.setdefault("condition", DEFAULT_CONDITION)
        entry.setdefault("required", True)
        out[name] = entry
    return out


def _env_files(value: Any, project_dir: str) -> Any:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        entry = {"path": item} if isinstance(item, str) else dict(item)
        if isinstance(entry.get("path"), str):
            entry["path"] = absolute_path(entry["path"], project_dir)
        entry.setdefault("required", True)
        out.append(entry)
    return out


def _label_files(value: Any, project_dir: str) -> Any:
    items = value if isinstance(value, list) else [value]
    return [absolute_path(i, project_dir) if isinstance(i, str) else i for i in items]


def _ports(value: Any, project_dir: str) -> Any:
    if not isinstance(value, list):
        return value
    defaulted = [
        {"mode": "ingress", "protocol": "tcp", **e} if isinstance(e, dict) else e for e in value
    ]
    try:
        return [
            port
            for entry in defaulted
            for port in ([entry] if isinstance(entry, dict) else normalize_port(entry))
        ]
    except ComposeError:
        # One spec that parses only once interpolated leaves every short spec as written.
        return defaulted


def _volume(entry: Any, project_dir: str) -> Any:
    """Short form parsed (with its defaults); long form as written, target cleaned."""
    if isinstance(entry, str):
        try:
            out = parse_volume_spec(entry)
        except ComposeError:
            return entry
        if out.get("type") == "bind" and isinstance(out.get("source"), str):
            out["source"] = absolute_path(out["source"], project_dir)
            out.setdefault("bind", {"create_host_path": True})
        elif out.get("type") == "volume":
            out.setdefault("volume", {})
    elif isinstance(entry, dict):
        out = dict(entry)
    else:
        return entry
    if isinstance(out.get("target"), str):
        out["target"] = clean_path(out["target"])
    return out


def _secret(entry: Any, project_dir: str) -> Any:
    out = {"source": entry} if isinstance(entry, str) else entry
    if isinstance(out, dict) and not out.get("target") and isinstance(out.get("source"), str):
        out = {**out, "target": f"/run/secrets/{out['source']}"}
    return out


def _networks(value: Any, project_dir: str) -> Any:
    return {str(n): None for n in value} if isinstance(value, list) else value


def _string_list(value: Any, project_dir: str) -> Any:
    return [value] if isinstance(value, str) else value


def _gpus(value: Any, project_dir: str) -> Any:
    return [{"count": "all"}] if value == "all" else value


def _each(convert: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def run(value: Any, project_dir: str) -> Any:
        if not isinstance(value, list):
            return value
        return [convert(item, project_dir) for item in value]

    return run


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "build": _build,
    "configs": _each(lambda e, _: {"source": e} if isinstance(e, str) else e),
    "depends_on": _depends_on,
    "devices": _each(lambda e, _: normalize_device(e) if isinstance(e, str) else e),
    "dns": _string_list,
    "env_file": _env_files,
    "gpus": _gpus,
    "label_file": _label_files,
    "networks": _networks,
    "ports": _ports,
    "secrets": _each(_secret),
    "volumes": _each(_volume),
}
