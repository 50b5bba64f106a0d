"""Docker Engine API shapes of images: list summaries, inspect, history, and list filters.

Pure functions over :class:`~pycompose.engine.images.store.ImageRecord`; whatever needs the
disk (layer sizes, layer directories) is passed in by the caller, so these are unit-tested
without any store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pycompose.engine.errors import InvalidArgument
from pycompose.engine.images.reference import familiar_name, familiar_repository, parse_reference
from pycompose.engine.images.store import ImageRecord

LIST_FILTERS = frozenset({"before", "dangling", "label", "reference", "since", "until"})
PRUNE_FILTERS = frozenset({"dangling", "label", "label!", "until"})
NONE_TAG = "<none>:<none>"
NONE_DIGEST = "<none>@<none>"
ZERO_TIME = "0001-01-01T00:00:00Z"

# The keys of Docker's container config in the order it prints them, with its zero values:
# an image config that omits a key still shows it, as Docker's inspect does.
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}  # fmt: skip

_FRACTION_RE = re.compile(r"(\.\d{1,6})\d*")


def parse_created(text: str) -> datetime | None:
    """An image config's ``created`` (RFC 3339, up to nanoseconds) as an aware datetime."""
    if not text:
        return None
    cleaned = _FRACTION_RE.sub(r"\1", text.strip().replace("Z", "+00:00"), count=1)
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def created_unix(record: ImageRecord) -> int:
    """Seconds since the epoch of the image's creation (0 when unknown), as lists show it."""
    parsed = parse_created(record.created)
    return int(parsed.timestamp()) if parsed is not None else 0


def labels_of(record: ImageRecord) -> dict[str, str]:
    """The image's labels (``config.Labels``), never None."""
    labels = (record.config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def is_dangling(record: ImageRecord) -> bool:
    """Docker's "dangling": no tag and no digest reference names the image."""
    return not record.repo_tags and not record.repo_digests


def image_summary(
    record: ImageRecord, tags: Sequence[str] | None = None, *, containers: int = -1
) -> dict[str, Any]:
    """``GET /images/json`` item (``ImageSummary``); ``tags`` overrides the shown RepoTags."""
    return {
        "Containers": containers,
        "Created": created_unix(record),
        "Id": record.id,
        "Labels": labels_of(record),
        "ParentId": "",
        "RepoDigests": list(record.repo_digests),
        "RepoTags": list(record.repo_tags if tags is None else tags),
        "SharedSize": -1,
        "Size": record.size,
    }


def image_inspect(record: ImageRecord, graph_driver: Mapping[str, str]) -> dict[str, Any]:
    """``GET /images/{name}/json`` (``ImageInspect``); ``graph_driver`` is overlay2's Data."""
    cfg = record.config
    container_config = {**_CONFIG_DEFAULTS, **(cfg.get("config") or {})}
    out: dict[str, Any] = {
        "Id": record.id,
        "RepoTags": list(record.repo_tags),
        "RepoDigests": list(record.repo_digests),
        "Parent": "",
        "Comment": _last_comment(cfg),
        "Created": record.created or ZERO_TIME,
        "DockerVersion": str(cfg.get("docker_version", "")),
        "Author": str(cfg.get("author", "")),
        "Config": container_config,
        "Architecture": str(cfg.get("architecture", "")),
        "Os": str(cfg.get("os", "")),
        "Size": record.size,
        "GraphDriver": {"Name": "overlay2", "Data": dict(graph_driver)},
        "RootFS": {"Type": "layers", "Layers": list(record.diff_ids)},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }
    if cfg.get("variant"):
        out["Variant"] = str(cfg["variant"])
    if cfg.get("os.version"):
        out["OsVersion"] = str(cfg["os.version"])
    return out


def _last_comment(config: Mapping[str, Any]) -> str:
    history = config.get("history") or []
    return str(history[-1].get("comment", "")) if history else ""


def image_history(record: ImageRecord, layer_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """``GET /images/{name}/history``: newest first, one entry per history step.

    ``layer_sizes`` are the unpacked sizes of the image's layers, bottom first; steps marked
    ``empty_layer`` have size 0. Only the newest step carries the image id and tags; older
    ones say ``<missing>`` as Docker does for pulled images.
    """
    history = list(record.config.get("history") or [])
    if not history:  # no history recorded: one step per layer, undated
        history = [{"created": record.created} for _ in layer_sizes]
    sizes = iter(layer_sizes)
    items: list[dict[str, Any]] = []
    for step in history:
        empty = bool(step.get("empty_layer"))
        created = parse_created(str(step.get("created", "")))
        items.append({
            "Id": "<missing>",
            "Created": int(created.timestamp()) if created is not None else 0,
            "CreatedBy": str(step.get("created_by", "")),
            "Tags": None,
            "Size": 0 if empty else next(sizes, 0),
            "Comment": str(step.get("comment", "")),
        })
    items.reverse()
    if items:
        items[0]["Id"] = record.id
        items[0]["Tags"] = list(record.repo_tags) or None
    return items


# -- filters -------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` syntax: ``*`` and ``?`` never match ``/``; ``[...]`` classes."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"invalid reference filter pattern {pattern!r}")
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def reference_matches(pattern: str, tag: str) -> bool:
    """Docker's reference filter: ``pattern`` against ``busybox:latest`` or ``busybox``."""
    regex = _glob_regex(pattern)
    if regex.fullmatch(tag):
        return True
    try:
        ref = parse_reference(tag)
    except InvalidArgument:
        return False
    return regex.fullmatch(familiar_repository(ref)) is not None or \
        regex.fullmatch(familiar_name(ref)) is not None


def label_matches(labels: Mapping[str, str], wanted: Sequence[str]) -> bool:
    """Every ``key`` or ``key=value`` in ``wanted`` holds for ``labels``."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _bool_filter(name: str, values: Sequence[str]) -> bool:
    lowered = {v.strip().lower() for v in values}
    if lowered <= {"true", "1"}:
        return True
    if lowered <= {"false", "0"}:
        return False
    raise InvalidArgument(f"invalid filter '{name}={','.join(values)}'")


@dataclass(frozen=True)
class ListFilter:
    """The filters of ``GET /images/json``, with time bounds already resolved to seconds."""

    references: tuple[str, ...] = ()
    dangling: bool | None = None
    labels: tuple[str, ...] = ()
    before: int | None = None
    since: int | None = None
    until: int | None = None

    def select(self, record: ImageRecord) -> list[str] | None:
        """The tags to show for ``record``, or None when the image is filtered out."""
        if self.dangling is not None and is_dangling(record) != self.dangling:
            return None
        if not label_matches(labels_of(record), self.labels):
            return None
        created = created_unix(record)
        if self.before is not None and created >= self.before:
            return None
        if self.since is not None and created <= self.since:
            return None
        if self.until is not None and created > self.until:
            return None
        tags = list(record.repo_tags)
        if self.references:
            tags = [t for t in tags if any(reference_matches(p, t) for p in self.references)]
            if not tags:
                return None
        return tags


def list_filter(
    filters: Mapping[str, list[str]],
    created_of: Callable[[str], int],
    parse_time: Callable[[str], int],
) -> ListFilter:
    """Build a :class:`ListFilter`; ``created_of`` resolves before/since image names to their
    creation time, ``parse_time`` turns an ``until`` value into Unix seconds."""
    for name in filters:
        if name not in LIST_FILTERS:
            raise InvalidArgument(f"invalid filter '{name}'")

    def one(name: str) -> str | None:
        values = filters.get(name) or []
        if len(values) > 1:
            raise InvalidArgument(f"filter '{name}' takes one value, got {len(values)}")
        return values[0] if values else None

    dangling = filters.get("dangling")
    before, since, until = one("before"), one("since"), one("until")
    return ListFilter(
        references=tuple(filters.get("reference") or ()),
        dangling=_bool_filter("dangling", dangling) if dangling else None,
        labels=tuple(filters.get("label") or ()),
        before=created_of(before) if before is not None else None,
        since=created_of(since) if since is not None else None,
        until=parse_time(until) if until is not None else None,
    )


@dataclass(frozen=True)
class PruneFilter:
    """The filters of ``POST /images/prune``."""

    dangling_only: bool = True
    until: int | None = None
    labels: tuple[str, ...] = ()
    not_labels: tuple[str, ...] = ()

    def candidate(self, record: ImageRecord) -> bool:
        """Whether ``record`` is to be pruned (containers using it are checked elsewhere)."""
        if self.dangling_only and not is_dangling(record):
            return False
        if self.until is not None and created_unix(record) >= self.until:
            return False
        labels = labels_of(record)
        if not label_matches(labels, self.labels):
            return False
        return not (self.not_labels and label_matches(labels, self.not_labels))


def prune_filter(filters: Mapping[str, list[str]], parse_time: Callable[[str], int]) -> PruneFilter:
    """Build a :class:`PruneFilter` (``dangling`` defaults to true, as in Docker)."""
    for name in filters:
        if name not in PRUNE_FILTERS:
            raise InvalidArgument(f"invalid filter '{name}'")
    dangling = filters.get("dangling")
    until = filters.get("until")
    if until and len(until) > 1:
        raise InvalidArgument("filter 'until' takes one value")
    return PruneFilter(
        dangling_only=_bool_filter("dangling", dangling) if dangling else True,
        until=parse_time(until[0]) if until else None,
        labels=tuple(filters.get("label") or ()),
        not_labels=tuple(filters.get("label!") or ()),
    )
