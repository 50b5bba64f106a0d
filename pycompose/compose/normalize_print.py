"""What ``docker compose config`` does to the canonical model while printing it.

The normalise stage returns the model itself; these pure functions give the printer
compose's output conventions:

* ``escape_dollars``: every ``$`` in every string, keys included, printed as ``$$`` (so the
  output can be fed back to compose without interpolation); compose skips this only for
  ``--no-interpolate``.
* ``json_view``: compose's JSON (not its YAML) leaves out the top-level ``models`` and every
  ``x-*`` extension below the top level (services, mounts, ports, networks, volumes, ...).
  Keys of free-form maps (labels, environment, options...) are data, not extensions, and
  stay; compose prints those as a stray ``"#extensions"`` string, which we do not copy.
* ``yaml_view``: compose's YAML leaves out what its JSON prints empty (``command`` and
  ``entrypoint`` when null, ``ipam``, ``deploy.placement`` and ``deploy.resources`` when
  empty) and spells the blkio device fields in lower case (its JSON capitalises them).
"""

from __future__ import annotations

from typing import Any

# Maps whose keys are the user's data (names, variables, options), not compose fields.
FREE_FORM = frozenset({
    "environment", "labels", "annotations", "sysctls", "storage_opt", "driver_opts",
    "options", "args", "additional_contexts", "aux_addresses", "networks", "depends_on",
    "ulimits", "models", "services", "volumes", "secrets", "configs", "extra_hosts",
})


def escape_dollars(value: Any) -> Any:
    """Return ``value`` with ``$`` doubled in every string, mapping keys included."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {escape_dollars(k): escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_dollars(v) for v in value]
    return value


def _strip(value: Any, *, free_form: bool) -> Any:
    if isinstance(value, list):
        return [_strip(v, free_form=False) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if not free_form and isinstance(key, str) and key.startswith("x-"):
            continue
        out[key] = _strip(item, free_form=not free_form and key in FREE_FORM)
    return out


def json_view(project: dict[str, Any]) -> dict[str, Any]:
    """The canonical project as compose's ``config --format json`` shows it."""
    out: dict[str, Any] = {}
    for key, value in project.items():
        if key == "models":
            continue
        if key.startswith("x-"):
            out[key] = value  # top-level extensions are printed as they are
        elif key in ("services", "networks", "volumes", "secrets", "configs"):
            out[key] = {name: _strip(entry, free_form=False) for name, entry in value.items()}
        else:
            out[key] = value
    return out


# Printed by compose's JSON even when empty or null, left out by its YAML.
_YAML_OMIT_NULL = ("command", "entrypoint")
_YAML_OMIT_EMPTY_DEPLOY = ("placement", "resources")


def _yaml_service(service: Any) -> Any:
    if not isinstance(service, dict):
        return service
    out = {k: v for k, v in service.items() if not (k in _YAML_OMIT_NULL and v is None)}
    deploy = out.get("deploy")
    if isinstance(deploy, dict):
        out["deploy"] = {
            k: v for k, v in deploy.items() if not (k in _YAML_OMIT_EMPTY_DEPLOY and v == {})
        }
    blkio = out.get("blkio_config")
    if isinstance(blkio, dict):
        out["blkio_config"] = {
            k: [{str(f).lower(): x for f, x in d.items()} if isinstance(d, dict) else d
                for d in v] if isinstance(v, list) else v
            for k, v in blkio.items()
        }
    return out


def yaml_view(project: dict[str, Any]) -> dict[str, Any]:
    """The canonical project as compose's ``config`` (YAML) shows it."""
    out = dict(project)
    if isinstance(out.get("services"), dict):
        out["services"] = {n: _yaml_service(s) for n, s in out["services"].items()}
    if isinstance(out.get("networks"), dict):
        out["networks"] = {
            n: {k: v for k, v in net.items() if not (k == "ipam" and v == {})}
            if isinstance(net, dict) else net
            for n, net in out["networks"].items()
        }
    return out
