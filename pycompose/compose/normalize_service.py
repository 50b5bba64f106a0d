"""One service in compose's canonical long form: a table of per-key converters.

Each converter receives the raw value and a ``ServiceContext`` and returns the canonical
value, or ``None`` to drop the key. A converter that raises ``ComposeError`` marks that key
as invalid; the caller records the error with the key's dotted path and carries on, so one
run reports every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pycompose.compose.errors import ComposeError, Path
from pycompose.compose.normalize_build import (
    normalize_build,
    normalize_deploy,
    normalize_develop,
    normalize_extra_hosts,
    normalize_gpus,
    normalize_healthcheck,
    normalize_ulimits,
)
from pycompose.compose.normalize_files import ReadEnvFile, read_files
from pycompose.compose.normalize_ports import normalize_expose, normalize_port, port_key
from pycompose.compose.normalize_values import (
    at,
    convert_fields,
    dedupe,
    each,
    mapping,
    omit_empty,
    resolve_bare,
    scalar_list,
    shell_command,
    string_list,
    to_bool,
    to_count,
    to_float32,
    to_int,
    to_str,
    type_name,
)
from pycompose.compose.normalize_volumes import (
    normalize_device,
    normalize_file_mount,
    normalize_volume,
)
from pycompose.compose.paths import parse_volume_spec
from pycompose.compose.units import normalize_bytes, normalize_duration

# Fields compose keeps behind pointers: printed when set, even to false or zero.
KEEP_ZERO = frozenset({
    "command", "entrypoint", "init", "attach", "scale", "build", "develop", "blkio_config",
    "credential_spec", "deploy", "healthcheck", "logging", "stop_grace_period", "provider",
    "extends",
})


@dataclass
class ServiceContext:
    """What converters may need besides the value: where we are and the environment."""

    project_dir: str
    environ: Mapping[str, str]
    read_env_file: ReadEnvFile
    path: Path = ()
    errors: list[ComposeError] = field(default_factory=list)
    # False for ``config --no-normalize``: compose then leaves out the defaults it infers
    # (Dockerfile, build args from the environment), keeping only the canonical shapes.
    defaults: bool = True

    def fail(self, key: str | int, err: ComposeError) -> None:
        """Record ``err`` (its path relative to ``key``) at ``self.path + (key,) + err.path``."""
        path = (*self.path, key, *err.path)
        self.errors.append(ComposeError(err.message, file=err.file, line=err.line, path=path))


Converter = Callable[[Any, ServiceContext], Any]


def _environment(value: Any, ctx: ServiceContext) -> dict[str, str | None]:
    return mapping(value, bare=None, null=None)


def _labels(value: Any, ctx: ServiceContext) -> dict[str, str | None]:
    return mapping(value)


def _ports(value: Any, ctx: ServiceContext) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ComposeError(f"must be a list, not {type_name(value)}")
    keyed: list[tuple[str, Any]] = []
    for index, entry in enumerate(value):
        try:
            keyed.extend((port_key(port, entry), port) for port in normalize_port(entry))
        except ComposeError as err:
            ctx.fail(index, err)
    return dedupe(keyed)


def _keyed(convert: Callable[[Any], Any], key: Callable[[Any], str]) -> Converter:
    """A list converter that also drops redefinitions (same ``key``), as compose does."""

    def run(value: Any, ctx: ServiceContext) -> list[Any]:
        items = _each(convert)(value, ctx)
        return dedupe([(key(item), item) for item in items])

    return run


def _unique(value: Any, ctx: ServiceContext) -> list[str]:
    return dedupe([(item, item) for item in string_list(value)])


def _each(convert: Callable[[Any], Any]) -> Converter:
    """A list converter applying ``convert`` to every item, reporting items by index."""

    def run(value: Any, ctx: ServiceContext) -> list[Any]:
        if not isinstance(value, list):
            raise ComposeError(f"must be a list, not {type_name(value)}")
        out = []
        for index, entry in enumerate(value):
            try:
                out.append(convert(entry))
            except ComposeError as err:
                ctx.fail(index, err)
        return out

    return run


def _volumes(value: Any, ctx: ServiceContext) -> list[Any]:
    if not isinstance(value, list):
        raise ComposeError(f"must be a list, not {type_name(value)}")
    keyed: list[tuple[str, Any]] = []
    for index, entry in enumerate(value):
        try:
            volume = normalize_volume(entry, ctx.project_dir, clean_target=ctx.defaults)
        except ComposeError as err:
            ctx.fail(index, err)
            continue
        # compose identifies a mount by its target as written (before cleaning).
        raw_target = entry.get("target") if isinstance(entry, dict) else None
        if isinstance(entry, str):
            raw_target = parse_volume_spec(entry).get("target")
        keyed.append((str(raw_target), volume))
    return dedupe(keyed)


def _networks(value: Any, ctx: ServiceContext) -> dict[str, Any]:
    if isinstance(value, list):
        return {to_str(name): None for name in value}
    if not isinstance(value, dict):
        raise ComposeError(f"must be a list or a mapping, not {type_name(value)}")
    out: dict[str, Any] = {}
    for name, conf in value.items():
        if conf is None:
            out[name] = None
            continue
        if not isinstance(conf, dict):
            raise ComposeError(f"{name}: must be a mapping or null, not {type_name(conf)}")
        entry = at(name, lambda c: convert_fields(c, {
            "priority": to_int, "gw_priority": to_int, "driver_opts": mapping,
            "aliases": scalar_list, "link_local_ips": scalar_list,
        }), conf)
        out[name] = omit_empty(entry)
    return out


def _depends_on(value: Any, ctx: ServiceContext) -> dict[str, Any]:
    if isinstance(value, list):
        return {to_str(name): {"condition": "service_started", "required": True}
                for name in value}
    if not isinstance(value, dict):
        raise ComposeError(f"must be a list or a mapping, not {type_name(value)}")
    out: dict[str, Any] = {}
    for name, conf in value.items():
        conf = conf if isinstance(conf, dict) else {}
        entry = {k: v for k, v in conf.items() if k not in ("restart", "required")}
        entry.setdefault("condition", "service_started")
        if to_bool(conf.get("restart", False)):
            entry["restart"] = True
        entry["required"] = to_bool(conf.get("required", True))
        out[name] = entry
    return out


def _hooks(value: Any, ctx: ServiceContext) -> list[dict[str, Any]]:
    def hook(entry: Any) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise ComposeError(f"must be a mapping, not {type_name(entry)}")
        out = convert_fields(entry, {
            "environment": lambda env: resolve_bare(mapping(env, bare=None, null=None),
                                                    ctx.environ),
            "privileged": to_bool,
        })
        out["command"] = at("command", shell_command, out.get("command"))
        return omit_empty(out, keep=frozenset({"command"}))

    hooks: list[dict[str, Any]] = _each(hook)(value, ctx)
    return hooks


def _logging(value: Any, ctx: ServiceContext) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ComposeError(f"must be a mapping, not {type_name(value)}")
    return omit_empty(convert_fields(value, {"options": mapping}))


def _models(value: Any, ctx: ServiceContext) -> dict[str, Any]:
    if isinstance(value, list):
        return {to_str(name): None for name in value}
    if not isinstance(value, dict):
        raise ComposeError(f"must be a list or a mapping, not {type_name(value)}")
    return dict(value)


def _provider(value: Any, ctx: ServiceContext) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ComposeError(f"must be a mapping, not {type_name(value)}")

    def options(raw: Any) -> dict[str, list[str]]:
        # compose prints every provider option as a list of strings.
        if not isinstance(raw, dict):
            raise ComposeError(f"must be a mapping, not {type_name(raw)}")
        return {k: at(k, string_list, v if isinstance(v, list) else to_str(v))
                for k, v in raw.items()}

    return omit_empty(convert_fields(value, {"options": options}))


def _pull_policy(value: Any, ctx: ServiceContext) -> str:
    text = to_str(value)
    return "missing" if text == "if_not_present" else text


def _blkio_entry(field: str, convert: Callable[[Any], Any]) -> Callable[[Any], dict[str, Any]]:
    # compose prints these entries with Go's field names, capitalised.
    def run(entry: Any) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise ComposeError(f"must be a mapping, not {type_name(entry)}")
        value = at(field, convert, entry.get(field, 0))
        return {"Path": entry.get("path"), field.capitalize(): value}

    return run


def _blkio(value: Any, ctx: ServiceContext) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ComposeError(f"must be a mapping, not {type_name(value)}")
    rate = each(_blkio_entry("rate", normalize_bytes))
    return omit_empty(convert_fields(value, {
        "weight": to_int,
        "weight_device": each(_blkio_entry("weight", to_int)),
        "device_read_bps": rate,
        "device_write_bps": rate,
        "device_read_iops": rate,
        "device_write_iops": rate,
    }))


def _bytes(value: Any) -> str | None:
    """A byte size; zero means unset, as compose prints it."""
    text = normalize_bytes(value)
    return None if text == "0" else text


def _cast(convert: Callable[[Any], Any]) -> Converter:
    return lambda value, ctx: convert(value)


def _ulimits(value: Any, ctx: ServiceContext) -> dict[str, Any]:
    return normalize_ulimits(value)


SERVICE_CONVERTERS: dict[str, Converter] = {
    "annotations": _labels,
    "attach": _cast(to_bool),
    "blkio_config": _blkio,
    "build": lambda value, ctx: normalize_build(
        value, ctx.project_dir, ctx.environ, defaults=ctx.defaults
    ),
    "cap_add": _unique,
    "cap_drop": _unique,
    "command": _cast(shell_command),
    "configs": _keyed(lambda entry: normalize_file_mount(entry, default_dir=None),
                      lambda item: item.get("target") or f"/{item.get('source')}"),
    "cpu_count": _cast(to_int),
    "cpu_percent": _cast(to_float32),
    "cpu_period": _cast(to_int),
    "cpu_quota": _cast(to_int),
    "cpu_rt_period": _cast(to_int),
    "cpu_rt_runtime": _cast(to_int),
    "cpu_shares": _cast(to_int),
    "cpus": _cast(to_float32),
    "depends_on": _depends_on,
    "deploy": _cast(normalize_deploy),
    "develop": lambda value, ctx: normalize_develop(value, ctx.project_dir),
    "device_cgroup_rules": _cast(scalar_list),
    "devices": _keyed(normalize_device, lambda item: repr(sorted(item.items()))),
    "dns": _unique,
    "dns_opt": _unique,
    "dns_search": _unique,
    "entrypoint": _cast(shell_command),
    "environment": _environment,
    "expose": lambda value, ctx: dedupe([(v, v) for v in normalize_expose(value)]),
    "external_links": _cast(scalar_list),
    "extra_hosts": _cast(normalize_extra_hosts),
    "gpus": _cast(normalize_gpus),
    "group_add": _cast(scalar_list),
    "healthcheck": _cast(normalize_healthcheck),
    "init": _cast(to_bool),
    "labels": _labels,
    "links": _unique,
    "logging": _logging,
    "mem_limit": _cast(_bytes),
    "mem_reservation": _cast(_bytes),
    "mem_swappiness": _cast(_bytes),
    "memswap_limit": _cast(_bytes),
    "models": _models,
    "networks": _networks,
    "oom_kill_disable": _cast(to_bool),
    "oom_score_adj": _cast(to_int),
    "pids_limit": _cast(to_int),
    "ports": _ports,
    "post_start": _hooks,
    "pre_stop": _hooks,
    "privileged": _cast(to_bool),
    "profiles": _cast(scalar_list),
    "provider": _provider,
    "pull_policy": _pull_policy,
    "read_only": _cast(to_bool),
    "scale": _cast(to_count),
    "secrets": _keyed(lambda entry: normalize_file_mount(entry, default_dir="/run/secrets"),
                      lambda item: str(item.get("target"))),
    "security_opt": _cast(scalar_list),
    "shm_size": _cast(_bytes),
    "stdin_open": _cast(to_bool),
    "stop_grace_period": _cast(normalize_duration),
    "storage_opt": _labels,
    "sysctls": _labels,
    "tmpfs": _unique,
    "tty": _cast(to_bool),
    "ulimits": _ulimits,
    "use_api_socket": _cast(to_bool),
    "volumes": _volumes,
    "volumes_from": _cast(scalar_list),
}
# Plain strings, kept as they are (numbers from YAML become strings).
for _key in ("cgroup", "cgroup_parent", "container_name", "cpuset", "domainname", "hostname",
             "image", "ipc", "isolation", "mac_address", "network_mode", "pid", "platform",
             "restart", "runtime", "stop_signal", "user", "userns_mode", "uts",
             "volume_driver", "working_dir"):
    SERVICE_CONVERTERS[_key] = _cast(to_str)


def _fold_files(raw: dict[str, Any], out: dict[str, Any], ctx: ServiceContext) -> None:
    """Read ``env_file``/``label_file`` into ``environment``/``labels``, as compose prints."""
    if raw.get("env_file") is not None:
        try:
            values = read_files(raw["env_file"], ctx.project_dir, ctx.environ,
                                ctx.read_env_file, "env file")
        except ComposeError as err:
            ctx.fail("env_file", err)
        else:
            # The service's own keys win over the file's, even a bare key the project
            # environment does not define (it stays null), as compose does.
            merged = {**values, **out.get("environment", {})}
            out["environment"] = merged
    if raw.get("label_file") is not None:
        try:
            values = read_files(raw["label_file"], ctx.project_dir, ctx.environ,
                                ctx.read_env_file, "label file")
        except ComposeError as err:
            ctx.fail("label_file", err)
        else:
            out["labels"] = {**values, **out.get("labels", {})}


# Service fields that repeat a ``deploy`` field: both may be set only to the same value.
DEPLOY_TWINS = {
    "scale": ("replicas",),
    "cpus": ("resources", "limits", "cpus"),
    "mem_limit": ("resources", "limits", "memory"),
    "pids_limit": ("resources", "limits", "pids"),
    "mem_reservation": ("resources", "reservations", "memory"),
}


def _check_deploy_twins(service: dict[str, Any], ctx: ServiceContext) -> None:
    deploy = service.get("deploy")
    if not isinstance(deploy, dict):
        return
    if isinstance(service.get("scale"), int) and deploy.get("replicas") is None:
        deploy["replicas"] = service["scale"]  # compose copies scale into an existing deploy
    for key, twin_path in DEPLOY_TWINS.items():
        twin: Any = deploy
        for part in twin_path:
            twin = twin.get(part) if isinstance(twin, dict) else None
        if key in service and twin is not None and service[key] != twin:
            where = ".".join(("deploy", *twin_path))
            ctx.fail(key, ComposeError(f"can't set distinct values on '{key}' and '{where}'"))


def normalize_service(raw: dict[str, Any], ctx: ServiceContext) -> dict[str, Any]:
    """Convert one service to canonical form; errors go to ``ctx.errors``."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        convert = SERVICE_CONVERTERS.get(key)
        if key in ("env_file", "label_file") or (value is None and convert is not None):
            continue
        if convert is None:
            out[key] = value  # extensions and keys we pass through unchanged
            continue
        sub = ServiceContext(ctx.project_dir, ctx.environ, ctx.read_env_file,
                             (*ctx.path, key), ctx.errors, ctx.defaults)
        try:
            out[key] = convert(value, sub)
        except ComposeError as err:
            ctx.fail(key, err)
    if isinstance(out.get("environment"), dict):
        out["environment"] = resolve_bare(out["environment"], ctx.environ)
    _fold_files(raw, out, ctx)
    _check_deploy_twins(out, ctx)
    out = omit_empty(out, keep=KEEP_ZERO)
    # compose always prints these two, null when unset (null and [] mean different things).
    out.setdefault("command", None)
    out.setdefault("entrypoint", None)
    return out

