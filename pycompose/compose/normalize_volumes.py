"""Mounts of a service in compose's long form: volumes, devices, secrets and configs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize_values import (
    convert_fields,
    omit_empty,
    to_bool,
    to_int,
    to_str,
    type_name,
)
from pycompose.compose.paths import absolute_path, clean_path, parse_volume_spec
from pycompose.compose.units import normalize_bytes

VOLUME_TYPES = ("bind", "volume", "tmpfs", "npipe", "cluster", "image")


def normalize_volume(entry: Any, project_dir: str, *, clean_target: bool = True) -> dict[str, Any]:
    """One item of a service's ``volumes`` in long form, with absolute bind sources.

    A long-form target is cleaned (``/a/`` to ``/a``) unless ``clean_target`` is false, as
    compose leaves it with ``config --no-normalize``; the short form is always cleaned.
    """
    if isinstance(entry, str):
        volume = parse_volume_spec(entry)
    elif isinstance(entry, dict):
        volume = dict(entry)
        if not isinstance(volume.get("target"), str):
            raise ComposeError("volume is missing a mount target")
    else:
        raise ComposeError(f"invalid type {type_name(entry)} for a volume")
    kind = volume.get("type")
    if kind not in VOLUME_TYPES:
        raise ComposeError(f"invalid volume type {kind!r} (use {', '.join(VOLUME_TYPES)})")
    if isinstance(volume.get("source"), str) and kind == "bind":
        volume["source"] = absolute_path(volume["source"], project_dir)
    if isinstance(volume.get("target"), str) and (clean_target or isinstance(entry, str)):
        volume["target"] = clean_path(volume["target"])
    volume = convert_fields(volume, {"read_only": to_bool, **_VOLUME_OPTIONS})
    return omit_empty(volume, keep=frozenset(_VOLUME_OPTIONS))


def _options(converters: dict[str, Callable[[Any], Any]]) -> Callable[[Any], dict[str, Any]]:
    def run(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ComposeError(f"must be a mapping, not {type_name(value)}")
        return omit_empty(convert_fields(value, converters))

    return run


def _size(value: Any) -> str | None:
    text = normalize_bytes(value)
    return None if text == "0" else text


_VOLUME_OPTIONS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "bind": _options({"create_host_path": to_bool}),
    "volume": _options({"nocopy": to_bool}),
    "tmpfs": _options({"size": _size, "mode": to_int}),
    "image": _options({}),
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
    out = convert_fields(out, {"uid": to_str, "gid": to_str, "mode": file_mode})
    return omit_empty(out, keep=frozenset({"mode"}))
