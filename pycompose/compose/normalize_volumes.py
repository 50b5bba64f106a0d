"""Mounts of a service in compose's long form: volumes, devices, secrets and configs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize_values import omit_empty, to_bool, to_int, to_str, type_name
from pycompose.compose.paths import absolute_path, clean_path, parse_volume_spec
from pycompose.compose.units import UnitError, normalize_bytes

VOLUME_TYPES = ("bind", "volume", "tmpfs", "npipe", "cluster", "image")


def normalize_volume(entry: Any, project_dir: str) -> dict[str, Any]:
    """One item of a service's ``volumes`` in long form, with absolute bind sources."""
    if isinstance(entry, str):
        volume = parse_volume_spec(entry)
    elif isinstance(entry, dict):
        volume = dict(entry)
    else:
        raise ComposeError(f"invalid type {type_name(entry)} for a volume")
    kind = volume.get("type")
    if kind not in VOLUME_TYPES:
        raise ComposeError(f"invalid volume type {kind!r} (use {', '.join(VOLUME_TYPES)})")
    if isinstance(volume.get("source"), str) and kind == "bind":
        volume["source"] = absolute_path(volume["source"], project_dir)
    if isinstance(volume.get("target"), str):
        volume["target"] = clean_path(volume["target"])
    if "read_only" in volume:
        volume["read_only"] = to_bool(volume["read_only"])
    for key, fix in _VOLUME_OPTIONS.items():
        if isinstance(volume.get(key), dict):
            volume[key] = fix(volume[key])
    return omit_empty(volume, keep=frozenset(_VOLUME_OPTIONS))


def _bind_options(bind: dict[str, Any]) -> dict[str, Any]:
    out = dict(bind)
    if "create_host_path" in out:
        out["create_host_path"] = to_bool(out["create_host_path"])
    return omit_empty(out)


def _volume_options(volume: dict[str, Any]) -> dict[str, Any]:
    out = dict(volume)
    if "nocopy" in out:
        out["nocopy"] = to_bool(out["nocopy"])
    return omit_empty(out)


def _tmpfs_options(tmpfs: dict[str, Any]) -> dict[str, Any]:
    out = dict(tmpfs)
    if out.get("size") is not None:
        try:
            out["size"] = normalize_bytes(out["size"])
        except UnitError as err:
            raise ComposeError(f"tmpfs.size: {err.message}") from None
        if out["size"] == "0":
            del out["size"]
    if out.get("mode") is not None:
        out["mode"] = to_int(out["mode"])
    return omit_empty(out)


_VOLUME_OPTIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "bind": _bind_options,
    "volume": _volume_options,
    "tmpfs": _tmpfs_options,
    "image": lambda image: omit_empty(dict(image)),
}


def normalize_device(entry: Any) -> dict[str, Any]:
    """``devices``: ``src[:dst[:perms]]`` to ``{source, target, permissions}``."""
    if isinstance(entry, dict):
        if not entry.get("target"):
            raise ComposeError("device is missing a mount target")
        return omit_empty(dict(entry))
    if not isinstance(entry, str):
        raise ComposeError(f"invalid type {type_name(entry)} for a device")
    parts = entry.split(":")
    if len(parts) > 3 or not all(parts):
        raise ComposeError(f"invalid device {entry!r}: use source[:target[:permissions]]")
    source = parts[0]
    target = parts[1] if len(parts) > 1 else source
    permissions = parts[2] if len(parts) > 2 else "rwm"
    return {"source": source, "target": target, "permissions": permissions}


def file_mode(value: Any) -> str:
    """A secret/config file mode, printed in octal like compose (``0400``)."""
    if isinstance(value, str):
        try:
            number = int(value, 8)
        except ValueError:
            raise ComposeError(f"invalid file mode {value!r}: expected octal (0440)") from None
    else:
        number = to_int(value)
    return "0" + format(number, "o")


def normalize_file_mount(entry: Any, *, default_dir: str | None) -> dict[str, Any]:
    """A service's ``secrets``/``configs`` item in long form.

    Secrets get ``target: /run/secrets/<source>`` when none is given (``default_dir``);
    configs do not, as compose prints them.
    """
    if isinstance(entry, str):
        out: dict[str, Any] = {"source": entry}
    elif isinstance(entry, dict):
        out = dict(entry)
    else:
        raise ComposeError(f"invalid type {type_name(entry)}: expected a name or a mapping")
    if default_dir is not None and not out.get("target") and isinstance(out.get("source"), str):
        out["target"] = f"{default_dir}/{out['source']}"
    for key in ("uid", "gid"):
        if out.get(key) is not None:
            out[key] = to_str(out[key])
    if out.get("mode") is not None:
        out["mode"] = file_mode(out["mode"])
    return omit_empty(out, keep=frozenset({"mode"}))
