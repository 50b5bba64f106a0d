"""Stage 1 of the loader: compose YAML text to plain Python data, with line numbers.

We read libyaml's event stream (through PyYAML's C parser) and build the data ourselves
instead of using a PyYAML constructor, for four reasons:

- scalars follow the rules docker compose v2 uses (go-yaml v3, close to YAML 1.2):
  ``yes``/``on``/``y`` stay strings, ``22:22`` stays a string, ``0o17`` and ``017`` are 15;
- every mapping key and sequence item gets its line, for errors later in the loader;
- hostile input fails fast with one clear error: nesting depth is checked per event (PyYAML's
  own recursive C composer overflows the C stack on ~30,000 nested ``[``), and alias
  expansion is counted so that a "billion laughs" document stops at a node budget;
- each alias is expanded into its own copy, so later stages may change the data in place.

Timestamps (``2001-12-14``) stay strings: docker compose turns them into time values that
its schema then rejects in typed fields. We keep the text, which is what people mean.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from dataclasses import dataclass
from typing import Any

from pycompose.compose.errors import ComposeError, Path
from pycompose.compose.tags import Override, Reset
from pycompose.compose.yamlimport import yaml

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Larger compose files are refused before parsing."""

MAX_DEPTH = 128
"""Deepest nesting of mappings and sequences accepted (real compose files stay below 10)."""

MAX_WORK = 1_000_000
"""Budget for building one file, which stops alias bombs and other costly documents.

Every node costs one plus its nesting depth (its line entry holds its whole path), every
alias costs what it copies. A generated 200-service project uses about 71,000.
"""

_Parser: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_BINARY = "tag:yaml.org,2002:binary"
_MERGE = "tag:yaml.org,2002:merge"
_RESET = "!reset"
_OVERRIDE = "!override"

# go-yaml's fixed words; everything else starting with a letter is a string.
_WORDS: dict[str, Any] = {
    "true": True, "True": True, "TRUE": True,
    "false": False, "False": False, "FALSE": False,
    "": None, "~": None, "null": None, "Null": None, "NULL": None,
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
    ".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
    "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf"),
    "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
}  # fmt: skip
_NUMBER_START = frozenset("0123456789+-.")
# Go's strconv.ParseInt(s, 0, 64) syntax (after go-yaml removed every underscore).
_INT_RE = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_DOT_FLOAT_RE = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
# go-yaml's timestamp layouts; docker compose rejects such values as mapping keys.
_TIMESTAMP_RE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[Tt]\d{1,2}:\d{1,2}:\d{1,2}(?:\.\d+)?(?:Z|[-+]\d{2}:\d{2})"
    r"| \d{1,2}:\d{1,2}:\d{1,2}(?:\.\d+)?)?"
)


@dataclass(frozen=True)
class Source:
    """One parsed compose document.

    ``lines`` maps the path of every mapping key and sequence item, e.g.
    ``("services", "web", "ports", 0)``, to its 1-based line; ``()`` is the document's first line.
    Values inside an expanded alias point at the lines where the anchored node is written.
    """

    name: str
    data: dict[str, Any]
    lines: dict[Path, int]
    # Where a plain scalar value is a date/time: go-yaml reads those as times, which
    # docker compose's schema then rejects (outside x-* extensions). Kept as text here.
    timestamps: tuple[Path, ...] = ()


def parse_yaml(text: str | bytes, name: str) -> Source:
    """Parse a compose file that holds exactly one YAML document.

    Use :func:`parse_yaml_documents` where several documents (``---``) must be accepted:
    docker compose merges them in order, as if each were its own ``-f`` file.
    """
    docs = parse_yaml_documents(text, name)
    if len(docs) > 1:
        raise ComposeError(
            f"holds {len(docs)} YAML documents where one was expected",
            file=name,
            line=docs[1].lines.get((), None),
        )
    return docs[0]


def parse_yaml_documents(text: str | bytes, name: str) -> list[Source]:
    """Parse every YAML document of a compose file, each of which must be a mapping.

    Raises :class:`ComposeError` naming the file and line for: an oversized or empty file,
    invalid YAML (tabs used for indentation get their own message), duplicate keys,
    non-string keys, nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_WORK`
    nodes (weighted by depth) after alias expansion, unknown anchors and bad merge keys (``<<``).
    """
    text = _decode(text, name)
    if len(text) > MAX_FILE_BYTES:
        raise ComposeError(
            f"file is larger than the {MAX_FILE_BYTES // (1024 * 1024)} MiB limit", file=name
        )
    parser = _Parser(text)
    try:
        return _Builder(name, parser).documents()
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(err, text, name) from err
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        message = f"invalid YAML: character #x{err.character:04x} is not allowed ({err.reason})"
        raise ComposeError(message, file=name, line=line) from err
    except yaml.YAMLError as err:
        raise ComposeError(f"invalid YAML: {err}", file=name) from err
    finally:
        parser.dispose()


def _decode(text: str | bytes, name: str) -> str:
    """Bytes to text: UTF-8 (with or without BOM) or UTF-16 with a BOM, as libyaml reads."""
    if isinstance(text, str):
        return text[1:] if text.startswith("\ufeff") else text
    if len(text) > MAX_FILE_BYTES:
        raise ComposeError(
            f"file is larger than the {MAX_FILE_BYTES // (1024 * 1024)} MiB limit", file=name
        )
    try:
        if text.startswith((b"\xff\xfe", b"\xfe\xff")):
            return text.decode("utf-16")
        return text.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = text[: err.start].count(b"\n") + 1
        raise ComposeError(f"file is not valid UTF-8 ({err.reason})", file=name, line=line) from err


def _syntax_error(err: yaml.MarkedYAMLError, text: str, name: str) -> ComposeError:
    """Turn libyaml's message into ours, spotting tabs used for indentation."""
    mark = err.problem_mark or err.context_mark
    if mark is None:
        return ComposeError(f"invalid YAML: {err.problem or err}", file=name)
    lines = text.split("\n", mark.line + 1)
    line_text = lines[mark.line] if mark.line < len(lines) else ""
    indent = line_text[: len(line_text) - len(line_text.lstrip(" \t-?:"))]
    if "\t" in indent or "tab character" in (err.problem or ""):
        message = "a tab character is used for indentation; YAML indentation must use spaces"
    else:
        message = f"invalid YAML: {err.problem} (column {mark.column + 1})"
        if err.context and err.context_mark is not None:
            message += f", {err.context} at line {err.context_mark.line + 1}"
    return ComposeError(message, file=name, line=mark.line + 1)


def resolve_plain(value: str) -> Any:
    """Type of an untagged plain scalar, the way docker compose (go-yaml v3) reads it."""
    if not value:
        return None
    if value[0] not in _NUMBER_START:
        return _WORDS.get(value, value)
    if value in _WORDS:
        return _WORDS[value]
    if value[0] == ".":
        return float(value) if _DOT_FLOAT_RE.fullmatch(value) else value
    plain = value.replace("_", "")
    if _INT_RE.fullmatch(plain):
        number = _go_int(plain)
        if _INT_MIN <= number <= _UINT_MAX:
            return number
    if _FLOAT_RE.fullmatch(plain):
        result = float(plain)
        # Go's ParseFloat fails on overflow, so the text stays a string.
        if result not in (float("inf"), float("-inf")):
            return result
    return value


def _go_int(text: str) -> int:
    """Go's base-0 integer syntax: 0x, 0o, 0b and a leading 0 for octal."""
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "0123456789":
        return sign * int(digits[1:], 8)
    return sign * int(digits, 0)


def _resolve_tagged(tag: str, value: str, line: int, name: str) -> Any:
    """A scalar with an explicit tag: the YAML core tags are checked like go-yaml does."""
    if tag == _STR:
        return value
    if tag == _BINARY:
        return _binary(value, line, name)
    if tag not in (_INT, _FLOAT, _BOOL, _NULL):
        # Unknown tags (and !!timestamp) keep the text, as docker compose does.
        return value
    result = resolve_plain(value)
    kind = {_INT: int, _FLOAT: float, _BOOL: bool, _NULL: type(None)}[tag]
    if tag == _FLOAT and type(result) is int:
        return float(result)
    if type(result) is not kind:
        short = "!!" + tag.rsplit(":", 1)[1]
        raise ComposeError(f"cannot decode {value!r} as a {short}", file=name, line=line)
    return result


def _binary(value: str, line: int, name: str) -> str:
    # Bytes that are not UTF-8 become U+FFFD, as in docker compose's Go strings.
    try:
        return base64.b64decode("".join(value.split()), validate=True).decode("utf-8", "replace")
    except binascii.Error as err:
        raise ComposeError(f"invalid !!binary value: {err}", file=name, line=line) from err


def _is_timestamp(text: str) -> bool:
    """Whether go-yaml would read this plain scalar as a time (a real calendar date)."""
    if len(text) < 8 or text[4:5] != "-" or not text[:4].isdigit():
        return False
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _copy(value: Any) -> Any:
    """Deep copy of built data (dicts, lists and Override hold the only mutable parts)."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    if kind is Override:
        return Override(_copy(value.value))
    return value


def _describe(value: Any) -> str:
    """A key as docker compose prints it in 'non-string key' errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a sequence"
    return str(value)


class _Anchor:
    """A finished anchored node: its value, the lines inside it (relative paths), its size."""

    __slots__ = ("rel_lines", "size", "value")

    def __init__(self, value: Any, rel_lines: list[tuple[Path, int]], size: int) -> None:
        self.value = value
        self.rel_lines = rel_lines
        self.size = size


class _Frame:
    """A mapping or sequence being built."""

    __slots__ = (
        "anchor", "entries_start", "is_list", "key", "key_lines", "merge", "merge_end",
        "merge_line", "merge_start", "merging", "path", "tag", "value", "work_start",
    )  # fmt: skip

    def __init__(self, path: Path, is_list: bool, event: Any, entries: int, work: int) -> None:
        self.path = path
        self.is_list = is_list
        self.value: Any = [] if is_list else {}
        self.tag: str | None = event.tag
        self.anchor: str | None = event.anchor
        self.entries_start = entries
        self.work_start = work
        self.key: str | None = None
        self.key_lines: dict[str, int] = {}
        self.merging = False
        self.merge: Any = None
        self.merge_line = 0
        self.merge_start = 0
        self.merge_end = 0


class _Builder:
    """Builds documents from libyaml events; one instance per file.

    The event loop is one function with local variables on purpose: it runs once per
    YAML node, and the 200-service benchmark file has about 11,000 of them.
    """

    def __init__(self, name: str, parser: Any) -> None:
        self.name = name
        self.parser = parser
        self.entries: list[tuple[Path, int]] = []
        self.timestamps: list[Path] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: set[str] = set()
        self.work = 0

    def error(self, message: str, line: int, path: Path = ()) -> ComposeError:
        return ComposeError(message, file=self.name, line=line, path=path)

    def documents(self) -> list[Source]:
        get = self.parser.get_event
        get()  # StreamStartEvent
        docs: list[Source] = []
        while True:
            event: Any = get()
            if type(event) is not yaml.DocumentStartEvent:
                break
            mark: Any = event.start_mark
            line = mark.line + 1
            self.entries = [((), line)]
            self.timestamps = []
            self.anchors = {}
            root = self.read_root(get)
            get()  # DocumentEndEvent
            if type(root) is not dict:
                raise self.error("top-level object must be a mapping", line)
            docs.append(Source(self.name, root, dict(self.entries), tuple(self.timestamps)))
        if not docs:
            raise ComposeError("empty compose file", file=self.name)
        return docs

    def read_root(self, get: Any) -> Any:
        """Consume the events of the document's root node and return its value."""
        stack: list[_Frame] = []
        entries = self.entries
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
        top: _Frame | None = None
        while True:
            event = get()
            kind = type(event)
            line = event.start_mark.line + 1
            self.work += 1 + len(stack)
            if self.work > MAX_WORK:
                raise self.too_many(line)
            is_merge = False
            timestamp = False
            if kind is scalar_event:
                tag, text = event.tag, event.value
                if tag is None:
                    plain = not event.style  # "" from libyaml, None from PyYAML's own parser
                    value: Any = resolve_plain(text) if plain else text
                    is_merge = plain and text == "<<"
                    timestamp = plain and type(value) is str and _is_timestamp(value)
                else:
                    value = self.tagged(tag, text, event.style, line)
                    is_merge = tag == _MERGE
                if event.anchor is not None:
                    self.anchors[event.anchor] = _Anchor(value, [], 1)
                if top is not None and top.is_list:
                    entries.append(((*top.path, len(top.value)), line))
            elif kind is alias_event:
                value = self.expand(event.anchor, self.slot(top, line), line)
            elif kind is mapping_start or kind is sequence_start:
                top = self.open(top, event, kind is sequence_start, line, len(stack))
                stack.append(top)
                continue
            else:  # the end of a mapping or sequence; its own line entry is already there
                value = self.finish(stack.pop(), line)
                top = stack[-1] if stack else None
            if top is None:
                return value
            if top.is_list:
                if timestamp:
                    self.timestamps.append((*top.path, len(top.value)))
                top.value.append(value)
            elif top.key is None:
                if type(value) is str and _is_timestamp(value) and not event.style:
                    raise self.error(
                        f"mapping key {value} is a timestamp, not a string", line, top.path
                    )
                self.set_key(top, value, line, is_merge)
            elif top.merging:
                top.merge, top.merging, top.key = value, False, None
                top.merge_end = len(entries)
            else:
                if timestamp:
                    self.timestamps.append((*top.path, top.key))
                top.value[top.key] = value
                top.key = None

    def slot(self, top: _Frame | None, line: int) -> Path | None:
        """Path of a node starting now (recording a sequence item's line); None for a key."""
        if top is None:
            return ()
        if top.is_list:
            path = (*top.path, len(top.value))
            self.entries.append((path, line))
            return path
        if top.key is None:
            return None
        return (*top.path, top.key)

    def open(self, top: _Frame | None, event: Any, is_list: bool, line: int, depth: int) -> _Frame:
        """Start a mapping or sequence."""
        path = self.slot(top, line)
        if path is None:
            assert top is not None
            found = "sequence" if is_list else "mapping"
            raise self.error(f"mapping key must be a string, found a {found}", line, top.path)
        if depth >= MAX_DEPTH:
            raise self.error(f"nesting is deeper than {MAX_DEPTH} levels", line)
        frame = _Frame(path, is_list, event, len(self.entries), self.work)
        if frame.anchor is not None:
            # Until it is finished, an alias to this anchor would be a cycle.
            self.open_anchors.add(frame.anchor)
            self.anchors.pop(frame.anchor, None)
        return frame

    def tagged(self, tag: str, text: str, style: str | None, line: int) -> Any:
        """Value of a scalar with an explicit tag."""
        if tag == "!":
            return resolve_plain(text) if not style else text
        if tag == _RESET:
            return Reset()
        if tag == _OVERRIDE:
            return Override(resolve_plain(text) if not style else text)
        return _resolve_tagged(tag, text, line, self.name)

    def too_many(self, line: int) -> ComposeError:
        return self.error(
            f"document is too large to load: over {MAX_WORK} nodes, counting each node once "
            "per nesting level and every expansion of an alias (an alias bomb?)",
            line,
        )

    def expand(self, name: str, path: Path | None, line: int) -> Any:
        """An alias: a fresh copy of the anchored value, within the node budget."""
        anchor = self.anchors.get(name)
        if anchor is None:
            if name in self.open_anchors:
                raise self.error(f"anchor {name!r} value contains itself", line)
            raise self.error(f"unknown anchor {name!r} referenced", line)
        cost = anchor.size + (len(anchor.rel_lines) * len(path) if path else 0)
        self.charge(cost, line)
        if path is not None and anchor.rel_lines:
            self.entries.extend([((*path, *rel), ln) for rel, ln in anchor.rel_lines])
        return _copy(anchor.value)

    def set_key(self, frame: _Frame, key: Any, line: int, is_merge: bool) -> None:
        """A mapping key: must be a string, and new in its mapping."""
        if type(key) is not str:
            raise self.error(
                f"mapping key {_describe(key)} is not a string (quote it)", line, frame.path
            )
        first = frame.key_lines.get(key)
        if first is not None:
            raise self.error(
                f"duplicate key {key!r} (first defined at line {first})", line, frame.path
            )
        frame.key_lines[key] = line
        frame.key = key
        self.entries.append(((*frame.path, key), line))
        if is_merge:
            frame.merging = True
            frame.merge_line = line
            frame.merge_start = len(self.entries) - 1

    def charge(self, work: int, line: int) -> None:
        """Count bookkeeping work (copied line entries) against the node budget too."""
        self.work += work
        if self.work > MAX_WORK:
            raise self.too_many(line)

    def finish(self, frame: _Frame, line: int) -> Any:
        """A mapping or sequence ends: merge keys, tags, anchor."""
        value: Any = frame.value
        if frame.merge_line:
            self.apply_merge(frame, line)
        if frame.tag == _RESET:
            del self.entries[frame.entries_start :]
            value = Reset()
        elif frame.tag == _OVERRIDE:
            value = Override(value)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            cut = len(frame.path)
            # Nested anchors each copy their content's lines: bounded like alias expansion.
            self.charge(len(self.entries) - frame.entries_start, line)
            rel = [(p[cut:], ln) for p, ln in self.entries[frame.entries_start :]]
            self.anchors[frame.anchor] = _Anchor(value, rel, self.work - frame.work_start + 1)
        return value

    def apply_merge(self, frame: _Frame, line: int) -> None:
        """``<<``: keys written in the mapping win, then each merged mapping in order."""
        listed = type(frame.merge) is list
        sources = frame.merge if listed else [frame.merge]
        target: dict[str, Any] = frame.value
        origin: dict[str, int] = {}
        for index, source in enumerate(sources):
            if type(source) is not dict:
                raise self.error(
                    "merge key << needs a mapping or a sequence of mappings",
                    frame.merge_line,
                    frame.path,
                )
            for key, item in source.items():
                if key not in target:
                    target[key] = item
                    origin[key] = index
        # Re-home the line entries of the merged keys from "<<" to the mapping itself.
        start, end = frame.merge_start, frame.merge_end
        self.charge(len(self.entries) - start, line)
        base = len(frame.path) + 1
        moved: list[tuple[Path, int]] = []
        for path, line in self.entries[start + 1 : end]:
            rest = path[base:]
            index = 0
            if listed:
                index, rest = rest[0], rest[1:]  # type: ignore[assignment]
            if rest and origin.get(rest[0]) == index:  # type: ignore[arg-type]
                moved.append(((*frame.path, *rest), line))
        del frame.key_lines["<<"]
        self.entries[start:end] = moved
