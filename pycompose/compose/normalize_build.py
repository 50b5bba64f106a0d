"""Nested service blocks in canonical form: build, deploy, develop, healthcheck, ulimits,
extra_hosts and gpus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize_values import (
    mapping,
    omit_empty,
    resolve_bare,
    scalar_list,
    shell_command,
    string_list,
    to_bool,
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


def _context(context: str, project_dir: str) -> str:
    return context if is_remote_context(context) else absolute_path(context, project_dir)


def normalize_build(value: Any, project_dir: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """``build`` in long form: absolute context, ``Dockerfile`` by default, args resolved."""
    if isinstance(value, str):
        return {"context": _context(value, project_dir), "dockerfile": "Dockerfile"}
    out = _require_mapping(value)
    out["context"] = _context(to_str(out.get("context") or "."), project_dir)
    if not out.get("dockerfile") and not out.get("dockerfile_inline"):
        out["dockerfile"] = "Dockerfile"
    if out.get("args") is not None:
        # A bare arg takes its value from the environment and disappears when unset.
        args = resolve_bare(mapping(out["args"], bare=None, null=None), environ)
        out["args"] = {k: v for k, v in args.items() if v is not None}
    for key in ("labels", "additional_contexts"):
        if out.get(key) is not None:
            out[key] = mapping(out[key])
    for key in ("cache_from", "cache_to", "tags", "platforms", "entitlements", "ssh"):
        if out.get(key) is not None:
            out[key] = _ssh(out[key]) if key == "ssh" else scalar_list(out[key])
    if out.get("extra_hosts") is not None:
        out["extra_hosts"] = normalize_extra_hosts(out["extra_hosts"])
    if out.get("shm_size") is not None:
        out["shm_size"] = normalize_bytes(out["shm_size"])
        if out["shm_size"] == "0":
            del out["shm_size"]
    if isinstance(out.get("secrets"), list):
        out["secrets"] = [normalize_file_mount(s, default_dir=None) for s in out["secrets"]]
    if out.get("ulimits") is not None:
        out["ulimits"] = normalize_ulimits(out["ulimits"])
    for key in ("no_cache", "pull", "privileged"):
        if key in out:
            out[key] = to_bool(out[key])
    return omit_empty(out)


def _ssh(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}={v}" if v is not None else str(k) for k, v in value.items()]
    return string_list(value)


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
                raise ComposeError(f"invalid extra host {text!r}: expected host=ip or host:ip")
            pairs.append((host, ip))
    else:
        raise ComposeError(f"must be a list or a mapping, not {type_name(value)}")
    out = []
    for host, ip in pairs:
        if ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        out.append(f"{host}={ip}")
    return sorted(out)


def normalize_healthcheck(value: Any) -> dict[str, Any]:
    """``healthcheck``: string test as ``CMD-SHELL``, durations printed the Go way."""
    out = _require_mapping(value)
    test = out.get("test")
    if isinstance(test, str):
        out["test"] = ["CMD-SHELL", test]
    elif test is not None:
        out["test"] = scalar_list(test)
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if out.get(key) is not None:
            out[key] = normalize_duration(out[key])
    if out.get("retries") is not None:
        out["retries"] = to_int(out["retries"])
    if "disable" in out:
        out["disable"] = to_bool(out["disable"])
    keep = frozenset({"interval", "timeout", "start_period", "start_interval", "retries"})
    return omit_empty(out, keep=keep)


def normalize_ulimits(value: Any) -> dict[str, Any]:
    """``ulimits``: a single number stays a number (0 prints as ``{}``), else soft/hard."""
    if not isinstance(value, dict):
        raise ComposeError(f"must be a mapping, not {type_name(value)}")
    out: dict[str, Any] = {}
    for name, limit in value.items():
        if isinstance(limit, dict):
            entry = {k: to_int(v) if k in ("soft", "hard") else v for k, v in limit.items()}
            out[name] = omit_empty(entry)
        else:
            number = to_int(limit)
            out[name] = number if number else {}
    return out


def _device_request(value: Any) -> dict[str, Any]:
    out = _require_mapping(value)
    if "count" in out:
        out["count"] = -1 if out["count"] == "all" else to_int(out["count"])
    for key in ("capabilities", "device_ids"):
        if out.get(key) is not None:
            out[key] = scalar_list(out[key])
    if out.get("options") is not None:
        out["options"] = mapping(out["options"])
    return omit_empty(out)


def normalize_gpus(value: Any) -> list[dict[str, Any]]:
    """``gpus: all`` is one request for every device (``count: -1``)."""
    if value == "all":
        return [{"count": -1}]
    if not isinstance(value, list):
        raise ComposeError(f"must be 'all' or a list, not {type_name(value)}")
    return [_device_request(v) for v in value]


def _resources(value: Any) -> dict[str, Any]:
    out = _require_mapping(value)
    if out.get("cpus") is not None:
        out["cpus"] = to_float32(out["cpus"])
    if out.get("memory") is not None:
        out["memory"] = normalize_bytes(out["memory"])
    if out.get("pids") is not None:
        out["pids"] = to_int(out["pids"])
    if isinstance(out.get("devices"), list):
        out["devices"] = [_device_request(d) for d in out["devices"]]
    if out.get("memory") == "0":
        del out["memory"]
    return omit_empty(out)


def _rollout(value: Any) -> dict[str, Any]:
    out = _require_mapping(value)
    if out.get("parallelism") is not None:
        out["parallelism"] = to_int(out["parallelism"])
    for key in ("delay", "monitor"):
        if out.get(key) is not None:
            out[key] = normalize_duration(out[key])
    if out.get("max_failure_ratio") is not None:
        out["max_failure_ratio"] = to_float(out["max_failure_ratio"])
    return omit_empty(out, keep=frozenset({"parallelism"}))


def _restart_policy(value: Any) -> dict[str, Any]:
    out = _require_mapping(value)
    for key in ("delay", "window"):
        if out.get(key) is not None:
            out[key] = normalize_duration(out[key])
    if out.get("max_attempts") is not None:
        out["max_attempts"] = to_int(out["max_attempts"])
    return omit_empty(out, keep=frozenset({"delay", "window", "max_attempts"}))


def normalize_deploy(value: Any) -> dict[str, Any]:
    """``deploy``: typed values; ``resources`` and ``placement`` always present, as compose."""
    out = _require_mapping(value)
    if out.get("replicas") is not None:
        out["replicas"] = to_int(out["replicas"])
    if out.get("labels") is not None:
        out["labels"] = mapping(out["labels"])
    resources = _require_mapping(out.get("resources") or {})
    out["resources"] = omit_empty(
        {k: _resources(v) if k in ("limits", "reservations") else v for k, v in resources.items()},
        keep=frozenset({"limits", "reservations"}),
    )
    for key in ("update_config", "rollback_config"):
        if out.get(key) is not None:
            out[key] = _rollout(out[key])
    if out.get("restart_policy") is not None:
        out["restart_policy"] = _restart_policy(out["restart_policy"])
    placement = _require_mapping(out.get("placement") or {})
    if placement.get("max_replicas_per_node") is not None:
        placement["max_replicas_per_node"] = to_int(placement["max_replicas_per_node"])
    out["placement"] = omit_empty(placement)
    keep = frozenset({"replicas", "resources", "placement", "update_config", "rollback_config",
                      "restart_policy"})
    return omit_empty(out, keep=keep)


def normalize_develop(value: Any, project_dir: str) -> dict[str, Any]:
    """``develop.watch``: one item per path, absolute paths, ``exec.command`` always shown."""
    out = _require_mapping(value)
    if out.get("watch") is None:
        return omit_empty(out)
    if not isinstance(out["watch"], list):
        raise ComposeError(f"watch: must be a list, not {type_name(out['watch'])}")
    watch = []
    for item in out["watch"]:
        item = _require_mapping(item)
        paths = item.get("path")
        for path in paths if isinstance(paths, list) else [paths]:
            entry = dict(item)
            if isinstance(path, str):
                entry["path"] = absolute_path(path, project_dir)
            exec_ = _require_mapping(entry.get("exec") or {})
            exec_["command"] = shell_command(exec_.get("command"))
            entry["exec"] = exec_
            if "initial_sync" in entry:
                entry["initial_sync"] = to_bool(entry["initial_sync"])
            watch.append(omit_empty(entry, keep=frozenset({"exec"})))
    out["watch"] = watch
    return omit_empty(out)
