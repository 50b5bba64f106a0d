"""Nested service blocks in canonical form: build, deploy, develop, healthcheck, ulimits,
extra_hosts and gpus. Errors carry paths relative to the block (``interval``,
``resources.limits.cpus``); the service normaliser prefixes the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize_values import (
    at,
    convert_fields,
    each,
    mapping,
    omit_empty,
    resolve_bare,
    scalar_list,
    shell_command,
    string_list,
    to_bool,
    to_count,
    to_float,
    to_float32,
    to_int,
    to_str,
    type_name,
)
from pycompose.compose.normalize_volumes import normalize_file_mount
from pycompose.compose.paths import absolute_path, is_remote_context
from pycompose.compose.units import normalize_bytes, normalize_duration


def _require_mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ComposeError(f"must be a mapping, not {type_name(value)}")
    return dict(value)


def _nonzero_bytes(value: Any) -> str | None:
    """A byte size; zero means unset, as compose prints it."""
    text = normalize_bytes(value)
    return None if text == "0" else text


def _context(context: str, project_dir: str) -> str:
    return context if is_remote_context(context) else absolute_path(context, project_dir)


def _ssh(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}={v}" if v is not None else str(k) for k, v in value.items()]
    return string_list(value)


def normalize_build(
    value: Any, project_dir: str, environ: Mapping[str, str], *, defaults: bool = True
) -> dict[str, Any]:
    """``build`` in long form: absolute context, ``Dockerfile`` by default, args resolved.

    Without ``defaults`` (``config --no-normalize``) there is no default Dockerfile and bare
    args stay null, as in compose.
    """
    if isinstance(value, str):
        value = {"context": value}
    out = _require_mapping(value)
    out["context"] = _context(at("context", to_str, out.get("context") or "."), project_dir)
    if defaults and not out.get("dockerfile") and not out.get("dockerfile_inline"):
        out["dockerfile"] = "Dockerfile"

    def args(raw: Any) -> dict[str, str | None]:
        values = mapping(raw, bare=None, null=None)
        if not defaults:
            return values
        # A bare arg takes its value from the environment and disappears when unset.
        resolved = resolve_bare(values, environ)
        return {k: v for k, v in resolved.items() if v is not None}

    out = convert_fields(out, {
        "args": args,
        "labels": mapping,
        "additional_contexts": mapping,
        "cache_from": scalar_list,
        "cache_to": scalar_list,
        "tags": scalar_list,
        "platforms": scalar_list,
        "entitlements": scalar_list,
        "ssh": _ssh,
        "extra_hosts": normalize_extra_hosts,
        "shm_size": _nonzero_bytes,
        "secrets": each(lambda s: normalize_file_mount(s, default_dir=None)),
        "ulimits": normalize_ulimits,
        "no_cache": to_bool,
        "pull": to_bool,
        "privileged": to_bool,
        # Attestation settings are strings in compose's model: `provenance: true` is "true".
        "provenance": to_str,
        "sbom": to_str,
    })
    return omit_empty(out)


def normalize_extra_hosts(value: Any) -> list[str]:
    """``extra_hosts`` as a sorted ``host=ip`` list (IPv6 brackets removed), as compose prints."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for host, ips in value.items():
            for ip in ips if isinstance(ips, list) else [ips]:
                pairs.append((str(host), to_str(ip)))
    elif isinstance(value, list):
        for item in value:
            text = to_str(item)
            sep = "=" if "=" in text else ":"
            host, found, ip = text.partition(sep)
            if not found:
                raise ComposeError(f"invalid extra host {text!r}: missing IP (use host=ip)")
            pairs.append((host, ip))
    else:
        raise ComposeError(f"must be a list or a mapping, not {type_name(value)}")
    out = []
    for host, ip in pairs:
        if ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        out.append(f"{host}={ip}")
    return sorted(out)


def _health_test(test: Any) -> list[str]:
    return ["CMD-SHELL", test] if isinstance(test, str) else scalar_list(test)


def normalize_healthcheck(value: Any) -> dict[str, Any]:
    """``healthcheck``: string test as ``CMD-SHELL``, durations printed the Go way."""
    out = convert_fields(_require_mapping(value), {
        "test": _health_test,
        "interval": normalize_duration,
        "timeout": normalize_duration,
        "start_period": normalize_duration,
        "start_interval": normalize_duration,
        "retries": to_int,
        "disable": to_bool,
    })
    keep = frozenset({"interval", "timeout", "start_period", "start_interval", "retries"})
    return omit_empty(out, keep=keep)


def _ulimit(limit: Any) -> Any:
    if isinstance(limit, dict):
        return omit_empty(convert_fields(limit, {"soft": to_int, "hard": to_int}))
    number = to_int(limit)
    return number if number else {}  # a zero single limit prints as {}, as in compose


def normalize_ulimits(value: Any) -> dict[str, Any]:
    """``ulimits``: a single number stays a number, else ``{soft, hard}``."""
    if not isinstance(value, dict):
        raise ComposeError(f"must be a mapping, not {type_name(value)}")
    return {name: at(name, _ulimit, limit) for name, limit in value.items()}


def _count(value: Any) -> int:
    return -1 if value == "all" else to_int(value)


def _device_request(value: Any) -> dict[str, Any]:
    return omit_empty(convert_fields(_require_mapping(value), {
        "count": _count,
        "capabilities": scalar_list,
        "device_ids": scalar_list,
        "options": mapping,
    }))


def normalize_gpus(value: Any) -> list[dict[str, Any]]:
    """``gpus: all`` is one request for every device (``count: -1``)."""
    if value == "all":
        return [{"count": -1}]
    return each(_device_request)(value)


def _resource_set(value: Any) -> dict[str, Any]:
    return omit_empty(convert_fields(_require_mapping(value), {
        "cpus": to_float32,
        "memory": _nonzero_bytes,
        "pids": to_int,
        "devices": each(_device_request),
    }))


def _resources(value: Any) -> dict[str, Any]:
    out = convert_fields(_require_mapping(value), {
        "limits": _resource_set,
        "reservations": _resource_set,
    })
    return omit_empty(out, keep=frozenset({"limits", "reservations"}))


def _nonzero_duration(value: Any) -> str | None:
    """A duration compose holds by value: zero means unset."""
    text = normalize_duration(value)
    return None if text == "0s" else text


def _rollout(value: Any) -> dict[str, Any]:
    out = convert_fields(_require_mapping(value), {
        "parallelism": to_int,
        "delay": _nonzero_duration,
        "monitor": _nonzero_duration,
        "max_failure_ratio": to_float,
    })
    return omit_empty(out, keep=frozenset({"parallelism"}))


def _restart_policy(value: Any) -> dict[str, Any]:
    out = convert_fields(_require_mapping(value), {
        "delay": normalize_duration,
        "window": normalize_duration,
        "max_attempts": to_int,
    })
    return omit_empty(out, keep=frozenset({"delay", "window", "max_attempts"}))


def _placement(value: Any) -> dict[str, Any]:
    return omit_empty(convert_fields(_require_mapping(value), {"max_replicas_per_node": to_int}))


def normalize_deploy(value: Any) -> dict[str, Any]:
    """``deploy``: typed values; ``resources`` and ``placement`` always present, as compose."""
    out = _require_mapping(value)
    out.setdefault("resources", {})
    out.setdefault("placement", {})
    out = convert_fields(out, {
        "replicas": to_count,
        "labels": mapping,
        "resources": _resources,
        "update_config": _rollout,
        "rollback_config": _rollout,
        "restart_policy": _restart_policy,
        "placement": _placement,
    })
    keep = frozenset({"replicas", "resources", "placement", "update_config", "rollback_config",
                      "restart_policy"})
    return omit_empty(out, keep=keep)


def _watch_items(item: Any, project_dir: str) -> list[dict[str, Any]]:
    item = _require_mapping(item)
    paths = item.get("path")
    out = []
    for path in paths if isinstance(paths, list) else [paths]:
        entry = dict(item)
        if isinstance(path, str):
            entry["path"] = absolute_path(path, project_dir)
        exec_ = at("exec", _require_mapping, entry.get("exec") or {})
        exec_["command"] = at("exec", lambda c: at("command", shell_command, c),
                              exec_.get("command"))
        entry["exec"] = exec_  # compose always prints exec, with a null command when unset
        entry = convert_fields(entry, {"initial_sync": to_bool})
        out.append(omit_empty(entry, keep=frozenset({"exec"})))
    return out


def normalize_develop(value: Any, project_dir: str) -> dict[str, Any]:
    """``develop.watch``: one item per path, absolute paths, ``exec.command`` always shown."""
    out = _require_mapping(value)
    if out.get("watch") is not None:
        items = at("watch", each(lambda item: _watch_items(item, project_dir)), out["watch"])
        out["watch"] = [entry for group in items for entry in group]
    return omit_empty(out)
