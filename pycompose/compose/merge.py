"""Merging compose files the way docker compose v2 does for repeated ``-f`` options.

The rules are a table keyed by path patterns (``services.*.ports``), looked up for every
key present in both documents; anything not in the table follows the defaults:

* mappings merge key by key, sequences append, scalars are replaced;
* an override value of ``null`` keeps the earlier value (except for ``replace`` rules);
* ``!reset`` (:class:`~pycompose.compose.tags.Reset`) removes the key, ``!override``
  (:class:`~pycompose.compose.tags.Override`) replaces the value without merging.

After appending, sequences listed in :data:`UNIQUE` drop earlier entries that a later one
redefines (same port binding, same mount target, same variable name, ...): the later
entry takes the earlier one's position, as compose's "unicity" pass does.

Values keep their raw (short or long) syntax; the normalise stage turns them into one
shape later. Where two syntaxes must be compared (short and long port or volume syntax),
the key functions below parse just enough of the short syntax to compute the key.

Known, deliberate differences from docker compose v2.40 (its behaviour looks accidental):
a long-syntax port whose ``published`` is a number is de-duplicated against the same
short-syntax binding (compose keeps both), and ``networks.*.ipam.config`` keeps each
override entry merged with the base entry of the same subnet (compose can lose fields
when the base lists several subnets).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pycompose.compose.errors import ComposeError, Path
from pycompose.compose.tags import Override, Reset

Rule = Callable[[Any, Any, Path, "str | None"], Any]
"""A merge rule: (earlier value, later value, dotted path, file) -> merged value."""

KeyFn = Callable[[Any], str]
"""Identity of a sequence entry: entries with equal keys redefine each other."""

Pattern = tuple[str, ...]


# --------------------------------------------------------------------------- tags


def strip_tags(data: Any) -> Any:
    """Resolve the YAML tags left in one file: ``!reset`` drops, ``!override`` unwraps.

    Returns a deep copy; the input is not modified.
    """
    if isinstance(data, Override):
        return strip_tags(data.value)
    if isinstance(data, dict):
        return {k: strip_tags(v) for k, v in data.items() if not isinstance(v, Reset)}
    if isinstance(data, list):
        return [strip_tags(v) for v in data if not isinstance(v, Reset)]
    return data


# --------------------------------------------------------------------------- keys


def _key_value(entry: Any) -> str:
    """``NAME=value`` and ``NAME`` are both identified by NAME (caps, dns, tmpfs...)."""
    text = entry if isinstance(entry, str) else str(entry)
    return text.split("=", 1)[0]


def _expose_key(entry: Any) -> str:
    return str(entry)


def _env_file_key(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(entry.get("path"))
    return str(entry)


def _volume_key(entry: Any) -> str:
    """A service volume is identified by its target inside the container."""
    if isinstance(entry, dict):
        return str(entry.get("target"))
    from pycompose.compose.paths import VolumeSpecError, parse_volume_spec

    try:
        # The same parser as normalisation, so Windows drives (`C:\\x:/y`) split alike.
        return str(parse_volume_spec(str(entry)).get("target"))
    except VolumeSpecError:
        return str(entry)


def _device_key(entry: Any) -> str:
    """A device is identified by its path inside the container."""
    if isinstance(entry, dict):
        return str(entry.get("target"))
    parts = str(entry).split(":")
    return parts[0] if len(parts) == 1 else parts[1]


def _mount_key(default_dir: str) -> KeyFn:
    """Secrets and configs: the target, defaulting to ``<default_dir>/<source>``."""

    def key(entry: Any) -> str:
        if isinstance(entry, dict):
            if "target" in entry:
                return str(entry["target"])
            return f"{default_dir}/{entry.get('source')}"
        return f"{default_dir}/{entry}"

    return key


_PORT_RE = re.compile(
    r"^(?:(?:\[(?P<ip6>[^\]]+)\]|(?P<ip>[^\[\]]*)):)??"
    r"(?:(?P<published>[^:]*):)?(?P<target>[^:]+)$"
)


def split_port(spec: str) -> tuple[str, str, str, str]:
    """Split short port syntax into (host_ip, published, target, protocol)."""
    text, _, protocol = spec.partition("/")
    host_ip = ""
    if text.startswith("["):
        ip, _, text = text[1:].partition("]")
        host_ip, text = ip, text.lstrip(":")
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip = parts[0]
        parts = parts[1:]
    published, target = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    return host_ip, published, target, protocol or "tcp"


def _port_key(entry: Any) -> str:
    """A published port is identified by host ip, published port, target and protocol."""
    if isinstance(entry, dict):
        ip = str(entry.get("host_ip") or "")
        published = entry.get("published")
        pub = "" if published is None else str(published)
        target, proto = str(entry.get("target")), str(entry.get("protocol") or "tcp")
    else:
        ip, pub, target, proto = split_port(str(entry))
    return f"{ip or '0.0.0.0'}:{pub}:{target}/{proto}"


def _port_range(text: str) -> list[int] | None:
    first, sep, last = text.partition("-")
    if not sep or not first.isdigit() or not last.isdigit():
        return None
    return list(range(int(first), int(last) + 1))


def expand_port_ranges(entries: Iterable[Any]) -> list[Any]:
    """Split ``7000-7001:70-71`` into one entry per port, as compose's canonical form does.

    Only ranges of equal length on both sides are split: ``8000-8010:80`` means "any free
    port of the range" and stays one entry.
    """
    out: list[Any] = []
    for entry in entries:
        if not isinstance(entry, str):
            out.append(entry)
            continue
        ip, published, target, proto = split_port(entry)
        pubs, targets = _port_range(published), _port_range(target)
        if pubs is None or targets is None or len(pubs) != len(targets):
            out.append(entry)
            continue
        prefix = f"[{ip}]:" if ":" in ip else (f"{ip}:" if ip else "")
        suffix = "" if "/" not in entry else f"/{proto}"
        out.extend(f"{prefix}{p}:{t}{suffix}" for p, t in zip(pubs, targets, strict=True))
    return out


UNIQUE: dict[Pattern, KeyFn] = {
    ("services", "*", "annotations"): _key_value,
    ("services", "*", "build", "tags"): _key_value,
    ("services", "*", "cap_add"): _key_value,
    ("services", "*", "cap_drop"): _key_value,
    ("services", "*", "configs"): _mount_key(""),
    ("services", "*", "devices"): _device_key,
    ("services", "*", "dns"): _key_value,
    ("services", "*", "dns_opt"): _key_value,
    ("services", "*", "dns_search"): _key_value,
    ("services", "*", "env_file"): _env_file_key,
    ("services", "*", "expose"): _expose_key,
    ("services", "*", "links"): _key_value,
    ("services", "*", "networks", "*", "aliases"): _key_value,
    ("services", "*", "networks", "*", "link_local_ips"): _key_value,
    ("services", "*", "ports"): _port_key,
    ("services", "*", "profiles"): _key_value,
    ("services", "*", "secrets"): _mount_key("/run/secrets"),
    ("services", "*", "tmpfs"): _key_value,
    ("services", "*", "volumes"): _volume_key,
}
"""Sequences whose entries redefine earlier ones with the same key."""


def _matches(path: Path, pattern: Pattern) -> bool:
    if len(path) != len(pattern):
        return False
    return all(p == "*" or p == str(s) for s, p in zip(path, pattern, strict=True))


def _lookup(table: dict[Pattern, Any], path: Path) -> Any:
    for pattern, value in table.items():
        if _matches(path, pattern):
            return value
    return None


def dedupe(entries: Sequence[Any], key: KeyFn) -> list[Any]:
    """Keep one entry per key: the last definition, at the first one's position."""
    out: list[Any] = []
    index: dict[str, int] = {}
    for entry in entries:
        k = key(entry)
        if k in index:
            out[index[k]] = entry
        else:
            index[k] = len(out)
            out.append(entry)
    return out


def _unique(entries: list[Any], path: Path) -> list[Any]:
    key: KeyFn | None = _lookup(UNIQUE, path)
    if key is None:
        return entries
    if path[-1] == "ports":
        entries = expand_port_ranges(entries)
    return dedupe(entries, key)


def enforce_unique(data: dict[str, Any]) -> dict[str, Any]:
    """Apply the :data:`UNIQUE` rules to every sequence of one document (a copy)."""
    result = _enforce(data, ())
    assert isinstance(result, dict)
    return result


def _enforce(value: Any, path: Path) -> Any:
    if isinstance(value, dict):
        return {k: _enforce(v, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return _unique(list(value), path)
    return value


# --------------------------------------------------------------------------- conversions


def _as_list(value: Any) -> list[Any]:
    """Scalar-or-list fields (dns, tmpfs, env_file, ...) as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _as_env_map(value: Any) -> dict[str, Any]:
    """``[A=1, B]`` or ``{A: 1, B: null}`` as a mapping (B has no value)."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for entry in _as_list(value):
        name, sep, val = str(entry).partition("=")
        out[name] = val if sep else None
    return out


def _as_extra_hosts(value: Any) -> list[Any]:
    """extra_hosts as a list; the mapping form becomes sorted ``host=ip`` entries."""
    if not isinstance(value, dict):
        return _as_list(value)
    out: list[str] = []
    for host, ips in value.items():
        for ip in ips if isinstance(ips, list) else [ips]:
            out.append(f"{host}={ip}")
    return sorted(out)


def _as_name_map(default: dict[str, Any] | None) -> Callable[[Any], dict[str, Any]]:
    """A list of names (networks, depends_on) as a mapping name -> default."""

    def convert(value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return dict(value)
        return {str(n): (dict(default) if default is not None else None) for n in _as_list(value)}

    return convert


_DEPENDS_DEFAULT = {"condition": "service_started", "required": True}

# --------------------------------------------------------------------------- rules


def replace(base: Any, override: Any, path: Path, file: str | None) -> Any:
    """The later value wins, even null (command, entrypoint, healthcheck.test)."""
    return strip_tags(override)


def merge_env_map(base: Any, override: Any, path: Path, file: str | None) -> Any:
    """List or map forms merged as a map; a later ``NAME`` without value unsets it."""
    if override is None:
        return base
    later = _as_env_map(override)
    merged = {**_as_env_map(base), **later}
    # `NAME: !reset` drops a variable defined by an earlier file.
    return {k: strip_tags(v) for k, v in merged.items() if not isinstance(later.get(k), Reset)}


def _sequence_entry(name: Any, value: Any) -> str:
    if value is None:
        return str(name)
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"{name}={text}"


def _as_sequence(value: Any) -> list[str]:
    """``{A: 1, B: null}`` (sorted by name, as compose) or ``[A=1, B]`` as ``NAME[=value]``."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: str(item[0]))
        return [_sequence_entry(k, v) for k, v in items if not isinstance(v, Reset)]
    return [str(entry) for entry in _as_list(value) if not isinstance(entry, Reset)]


def merge_to_sequence(base: Any, override: Any, path: Path, file: str | None) -> Any:
    """Both sides as ``NAME=value`` lists: a later name replaces an earlier one in place,
    a new one is appended, ``NAME: !reset`` removes it. compose's model keeps this list
    form (``config --no-interpolate`` shows it); normalising reads it like the map form."""
    if override is None:
        return base
    resets = (
        {str(k) for k, v in override.items() if isinstance(v, Reset)}
        if isinstance(override, dict)
        else set()
    )
    out: list[str] = []
    index: dict[str, int] = {}
    for entry in _as_sequence(base) + _as_sequence(strip_tags(override)):
        name = entry.split("=", 1)[0]
        if name in index:
            out[index[name]] = entry
        else:
            index[name] = len(out)
            out.append(entry)
    return [e for e in out if e.split("=", 1)[0] not in resets]


def append_unique(base: Any, override: Any, path: Path, file: str | None) -> Any:
    """Scalar-or-list fields: both as lists, appended, then de-duplicated by key."""
    return _unique(_as_list(base) + _as_list(strip_tags(override)), path)


def merge_extra_hosts(base: Any, override: Any, path: Path, file: str | None) -> Any:
    """Appended; an identical ``host=ip`` entry is not repeated."""
    left = _as_extra_hosts(base)
    return left + [e for e in _as_extra_hosts(strip_tags(override)) if e not in left]


def _mapping_rule(convert: Callable[[Any], dict[str, Any]]) -> Rule:
    def rule(base: Any, override: Any, path: Path, file: str | None) -> Any:
        if override is None:
            return base
        return _merge_mappings(convert(base), convert(override), path, file)

    return rule


def _build_map(value: Any) -> dict[str, Any]:
    """``build: ./dir`` is ``build: {context: ./dir}``."""
    if isinstance(value, str):
        return {"context": value}
    return dict(value) if isinstance(value, dict) else {}


def merge_logging(base: Any, override: Any, path: Path, file: str | None) -> Any:
    """Options merge only when both name the same driver (or one names none)."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return base if override is None else override
    if "driver" in base and "driver" in override and base["driver"] != override["driver"]:
        return strip_tags(override)
    return _merge_mappings(base, override, path, file)


def merge_ipam_config(base: Any, override: Any, path: Path, file: str | None) -> Any:
    """Override pools replace the list; each inherits from the base pool of its subnet."""
    if override is None:
        return base
    pools = {p.get("subnet"): p for p in _as_list(base) if isinstance(p, dict)}
    out = []
    for pool in _as_list(override):
        if isinstance(pool, Reset):
            continue
        earlier = pools.get(pool.get("subnet")) if isinstance(pool, dict) else None
        if earlier is None:
            out.append(strip_tags(pool))
        else:
            out.append(_merge_mappings(earlier, pool, path, file))
    return out


RULES: dict[Pattern, Rule] = {
    ("services", "*", "command"): replace,
    ("services", "*", "entrypoint"): replace,
    ("services", "*", "healthcheck", "test"): replace,
    ("services", "*", "ulimits", "*"): replace,
    ("services", "*", "build"): _mapping_rule(_build_map),
    ("services", "*", "depends_on"): _mapping_rule(_as_name_map(_DEPENDS_DEFAULT)),
    ("services", "*", "networks"): _mapping_rule(_as_name_map(None)),
    ("services", "*", "models"): _mapping_rule(_as_name_map(None)),
    ("services", "*", "logging"): merge_logging,
    ("services", "*", "environment"): merge_to_sequence,
    ("services", "*", "labels"): merge_to_sequence,
    ("services", "*", "annotations"): merge_to_sequence,
    ("services", "*", "sysctls"): merge_to_sequence,
    ("services", "*", "build", "args"): merge_to_sequence,
    ("services", "*", "build", "labels"): merge_to_sequence,
    ("services", "*", "build", "additional_contexts"): merge_to_sequence,
    ("services", "*", "deploy", "labels"): merge_to_sequence,
    ("networks", "*", "labels"): merge_env_map,
    ("volumes", "*", "labels"): merge_env_map,
    ("services", "*", "extra_hosts"): merge_extra_hosts,
    ("services", "*", "build", "extra_hosts"): merge_extra_hosts,
    ("services", "*", "dns"): append_unique,
    ("services", "*", "dns_opt"): append_unique,
    ("services", "*", "dns_search"): append_unique,
    ("services", "*", "tmpfs"): append_unique,
    ("services", "*", "env_file"): append_unique,
    ("services", "*", "label_file"): append_unique,
    ("networks", "*", "ipam", "config"): merge_ipam_config,
}
"""Merge rules by path pattern; ``*`` matches any one key."""


# --------------------------------------------------------------------------- engine


def merge(
    base: dict[str, Any], override: dict[str, Any], *, file: str | None = None
) -> dict[str, Any]:
    """Merge a later compose document into an earlier one (``-f base -f override``).

    Pure: neither input is modified. ``file`` names the override in errors. Tags left
    in ``base`` are resolved as in a single file; those in ``override`` act on ``base``.
    """
    merged = _merge_mappings(strip_tags(base), override, (), file)
    return enforce_unique(merged)


def merge_value(base: Any, override: Any, path: Path, file: str | None = None) -> Any:
    """Merge one value at ``path`` (a key present on both sides) by the table's rules."""
    if isinstance(override, Override):
        return strip_tags(override.value)
    rule: Rule | None = _lookup(RULES, path)
    if rule is not None:
        return rule(base, override, path, file)
    if override is None:
        return base
    if isinstance(base, dict):
        if not isinstance(override, dict):
            raise _mismatch("a mapping", override, path, file)
        return _merge_mappings(base, override, path, file)
    if isinstance(base, list):
        if not isinstance(override, list):
            raise _mismatch("a sequence", override, path, file)
        return _unique(base + strip_tags(override), path)
    return strip_tags(override)


def _merge_mappings(
    base: dict[str, Any], override: dict[str, Any], path: Path, file: str | None
) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Reset):
            result.pop(key, None)
        elif key in result:
            result[key] = merge_value(result[key], value, (*path, key), file)
        else:
            result[key] = strip_tags(value)
    return result


def _mismatch(expected: str, got: Any, path: Path, file: str | None) -> ComposeError:
    kind = type(got).__name__
    return ComposeError(
        f"cannot override {expected} with a {kind} (an earlier file defines {expected})",
        file=file,
        path=path,
    )
