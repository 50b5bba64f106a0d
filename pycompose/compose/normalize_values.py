"""Small value converters shared by the normalise stage: shell words, casts, maps, lists.

Every converter takes a raw value as the YAML and interpolation stages leave it (interpolated
values arrive as strings: ``cpus: "0.5"``) and returns compose's canonical value, or raises
``ComposeError`` with a message (the caller adds the dotted path).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pycompose.compose.errors import ComposeError

_TRUE = ("y", "yes", "true", "on")
_FALSE = ("n", "no", "false", "off")
_SHELL_SPACE = " \t\r\n"
_SHELL_STOP = ";&|<>"


def shell_split(line: str) -> list[str]:
    """Split a command string into words exactly as compose does (go-shellwords rules).

    Quotes and backslashes work as in a shell except that a backslash escapes any character
    inside double quotes; ``$VAR``, backticks and ``$(...)`` stay literal; parsing stops at
    an unquoted ``; & | < >`` (``a && b`` is ``["a"]``, and a digit word just before ``>``
    is dropped, as in ``2>&1``); a ``(`` not preceded by ``$`` and unbalanced quotes are errors.
    """
    words: list[str] = []
    buf = ""
    got = False  # whether a word (possibly empty, from quotes) is in progress
    escaped = single = double = backquote = dollar = False
    for char in line:
        if escaped:
            buf, escaped, got = buf + char, False, True
            continue
        if char == "\\":
            if single:
                buf += char
            else:
                escaped = True
            continue
        if char in _SHELL_SPACE:
            if single or double or backquote or dollar:
                buf += char
            elif got:
                words.append(buf)
                buf, got = "", False
            continue
        if char == "`" and not (single or double or dollar):
            backquote = not backquote
        elif char == ")" and not (single or double or backquote):
            dollar = not dollar
        elif char == "(" and not (single or double or backquote):
            if dollar or not buf.endswith("$"):
                raise ComposeError("invalid command line string")
            dollar = True
            buf += char
            continue
        elif char == '"' and not (single or dollar):
            got = got or double
            double = not double
            continue
        elif char == "'" and not (double or dollar):
            got = got or single
            single = not single
            continue
        elif char in _SHELL_STOP and not (single or double or backquote or dollar):
            if char == ">" and buf[:1].isdigit():
                got = False  # "2>&1": the file-descriptor number is not a word
            break
        got = True
        buf += char
    if got:
        words.append(buf)
    if escaped or single or double or backquote or dollar:
        raise ComposeError("invalid command line string")
    return words


def shell_command(value: Any) -> list[str] | None:
    """``command``/``entrypoint``: a string is shell-split, a list is kept, null stays null."""
    if value is None:
        return None
    if isinstance(value, str):
        return shell_split(value)
    if isinstance(value, list):
        return [to_str(v) for v in value]
    raise ComposeError(f"must be a string or a list of strings, not {type_name(value)}")


def type_name(value: Any) -> str:
    """A YAML-flavoured name for a Python value's type, for messages."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "list", dict: "mapping"}.get(type(value), type(value).__name__)


def go_float(value: float) -> str:
    """Format a float as Go's ``%v`` does (``1``, ``0.1``, ``123456``, ``1e+06``, ``1e-07``)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    point = len(digits) + int(exponent)  # where the decimal point falls in ``digits``
    neg = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{neg}{digits}{'0' * (point - len(digits))}"
    return f"{neg}{digits[:point]}.{digits[point:]}"


def to_str(value: Any) -> str:
    """A scalar as compose prints it inside string maps and lists (``true``, ``1.5``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    raise ComposeError(f"must be a string, number or boolean, not {type_name(value)}")


def to_int(value: Any) -> int:
    """An integer field, accepting interpolated strings (``"512"``)."""
    if isinstance(value, bool):
        raise ComposeError(f"must be an integer, not {type_name(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isascii() and digits.isdigit() and text == value:
            return int(text)
    raise ComposeError(f"must be an integer, not {value!r}")


def to_count(value: Any) -> int:
    """A replica count: an integer, zero or more (``scale``, ``deploy.replicas``)."""
    number = to_int(value)
    if number < 0:
        raise ComposeError("must be greater than or equal to 0")
    return number


def to_float(value: Any) -> float:
    """A number field, accepting interpolated strings (``"0.5"``)."""
    if isinstance(value, bool):
        raise ComposeError(f"must be a number, not {type_name(value)}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            if value == value.strip() and "_" not in value:
                return float(value)
        except ValueError:
            pass
    raise ComposeError(f"must be a number, not {value!r}")


def to_float32(value: Any) -> float | int:
    """A float32 field (``cpus``): rounded to single precision, integral values as ints."""
    number = to_float(value)
    single = struct.unpack("f", struct.pack("f", number))[0]
    if single.is_integer():
        return int(single)
    for precision in range(1, 10):
        text = f"{single:.{precision}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return float(text)
    return float(single)


def to_bool(value: Any) -> bool:
    """A boolean field, accepting interpolated strings (``"true"``, ``"yes"``, ``"off"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ComposeError(f"must be a boolean, not {value!r}")


def string_list(value: Any) -> list[str]:
    """A string or a list of scalars, as a list of strings (``dns: 8.8.8.8``)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [to_str(v) for v in value]
    raise ComposeError(f"must be a string or a list, not {type_name(value)}")


def scalar_list(value: Any) -> list[str]:
    """A list of scalars as strings (``group_add: [100, wheel]``, ``expose: [80]``)."""
    if isinstance(value, list):
        return [to_str(v) for v in value]
    raise ComposeError(f"must be a list, not {type_name(value)}")


def mapping(value: Any, *, bare: str | None = "", null: str | None = "") -> dict[str, str | None]:
    """A ``KEY=VALUE`` list or a map, as a map of strings.

    ``bare`` is what a list item without ``=`` becomes; ``null`` is what a map key with a
    null value becomes (labels use ``""`` for both; environment uses ``None``).
    """
    out: dict[str, str | None] = {}
    if isinstance(value, list):
        for item in value:
            text = to_str(item)
            key, sep, val = text.partition("=")
            out[key] = val if sep else bare
    elif isinstance(value, Mapping):
        for key, val in value.items():
            out[str(key)] = null if val is None else to_str(val)
    else:
        raise ComposeError(f"must be a list or a mapping, not {type_name(value)}")
    return out


def resolve_bare(
    values: Mapping[str, str | None], environ: Mapping[str, str]
) -> dict[str, str | None]:
    """Give keys without a value their value from the environment, when it has one."""
    return {k: (environ.get(k) if v is None else v) for k, v in values.items()}


def omit_empty(struct_: dict[str, Any], keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Drop what Go's ``omitempty`` drops (null, false, 0, "", [], {}), except ``keep`` keys.

    ``keep`` names the fields compose holds behind a pointer: those are printed whenever
    they are set, even to a zero value (``init: false``, ``scale: 0``, ``retries: 0``).
    """
    out = {}
    for key, value in struct_.items():
        if key.startswith("x-"):
            out[key] = value
        elif key in keep:
            if value is not None:
                out[key] = value
        elif value is not None and value is not False and value != 0 and value not in ("", [], {}):
            out[key] = value
    return out


def at(key: str | int, convert: Callable[[Any], Any], value: Any) -> Any:
    """Run ``convert(value)``, locating any error under ``key`` (paths are relative)."""
    try:
        return convert(value)
    except ComposeError as err:
        raise ComposeError(err.message, path=(key, *err.path)) from None


def convert_fields(
    struct_: dict[str, Any], converters: Mapping[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    """Apply ``converters`` to the fields of ``struct_`` that are set (not null)."""
    out = dict(struct_)
    for key, convert in converters.items():
        if out.get(key) is not None:
            out[key] = at(key, convert, out[key])
    return out


def each(convert: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    """A converter for a list whose items ``convert`` handles, errors located by index."""

    def run(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ComposeError(f"must be a list, not {type_name(value)}")
        return [at(index, convert, item) for index, item in enumerate(value)]

    return run


def dedupe(items: list[tuple[str, Any]]) -> list[Any]:
    """Keep one item per key: the last one wins, at the place of the first (compose's rule)."""
    out: list[Any] = []
    index: dict[str, int] = {}
    for key, item in items:
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return out
