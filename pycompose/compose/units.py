"""Durations and byte sizes, parsed and printed the way docker compose v2 does.

Durations follow Go's ``time.ParseDuration`` (``1m30s``, ``1.5h``, ``100ms``, ``-2s``) with the
two extra units compose accepts, ``d`` (24h) and ``w`` (7d); they print like Go's
``Duration.String`` (``1h30m0s``, ``1.5µs``, ``0s``). Byte sizes follow docker's go-units
``RAMInBytes``: a decimal number, an optional space, then ``b`` or one of ``k m g t p``
(powers of 1024) optionally followed by ``b`` or ``ib``, in any case (``1g``, ``512MB``,
``1.5KiB``, ``1024``).
"""

from __future__ import annotations

from pycompose.compose.errors import ComposeError

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_DURATION_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign
    "\u03bcs": MICROSECOND,  # Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
    "d": 24 * HOUR,
    "w": 7 * 24 * HOUR,
}
_LIMIT = 1 << 63  # Go keeps durations in an int64 of nanoseconds

_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE_NUMBER_CHARS = "0123456789. "


class UnitError(ComposeError):
    """A duration or a byte size that cannot be parsed."""


def _leading_int(text: str) -> tuple[int, str]:
    value = 0
    i = 0
    while i < len(text) and text[i].isascii() and text[i].isdigit():
        if value > _LIMIT // 10:
            raise OverflowError
        value = value * 10 + int(text[i])
        if value > _LIMIT:
            raise OverflowError
        i += 1
    return value, text[i:]


def _leading_fraction(text: str) -> tuple[int, float, str]:
    # Digits past what fits in an int64 are consumed but ignored, as Go does.
    value, scale, i, overflow = 0, 1.0, 0, False
    while i < len(text) and text[i].isascii() and text[i].isdigit():
        if not overflow:
            candidate = value * 10 + int(text[i])
            if value > (_LIMIT - 1) // 10 or candidate > _LIMIT:
                overflow = True
            else:
                value = candidate
                scale *= 10
        i += 1
    return value, scale, text[i:]


def parse_duration(text: str) -> int:
    """Parse a compose duration (``1m30s``, ``1.5h``, ``2d``) into nanoseconds."""
    if not isinstance(text, str):
        raise UnitError(f"invalid duration {text!r}: must be a string such as '10s'")
    try:
        return _parse_duration(text)
    except OverflowError:
        raise UnitError(f'invalid duration "{text}": out of range') from None


def _parse_duration(orig: str) -> int:
    text = orig
    negative = False
    if text[:1] in ("-", "+"):
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise UnitError(f'invalid duration "{orig}"')
    total = 0
    while text:
        if not (text[0] == "." or (text[0].isascii() and text[0].isdigit())):
            raise UnitError(f'invalid duration "{orig}"')
        before = len(text)
        whole, text = _leading_int(text)
        has_int = len(text) != before
        fraction, scale, has_frac = 0, 1.0, False
        if text.startswith("."):
            text = text[1:]
            before = len(text)
            fraction, scale, text = _leading_fraction(text)
            has_frac = len(text) != before
        if not has_int and not has_frac:
            raise UnitError(f'invalid duration "{orig}"')
        end = 0
        while end < len(text) and text[end] != "." and not text[end].isdigit():
            end += 1
        unit_name, text = text[:end], text[end:]
        if not unit_name:
            raise UnitError(f'missing unit in duration "{orig}" (use one of ns us ms s m h d w)')
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise UnitError(f'unknown unit "{unit_name}" in duration "{orig}"')
        if whole > _LIMIT // unit:
            raise OverflowError
        whole *= unit
        if fraction > 0:
            whole += int(float(fraction) * (float(unit) / scale))
            if whole > _LIMIT:
                raise OverflowError
        total += whole
        if total > _LIMIT:
            raise OverflowError
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise OverflowError
    return total


def _fraction(value: int, precision: int) -> str:
    if value == 0:
        return ""
    return "." + str(value).rjust(precision, "0").rstrip("0")


def format_duration(nanoseconds: int) -> str:
    """Print nanoseconds the way Go's ``time.Duration.String`` does (``1h30m0s``)."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    u = abs(nanoseconds)
    if u < SECOND:
        if u < MICROSECOND:
            return f"{sign}{u}ns"
        precision, unit = (3, "\u00b5s") if u < MILLISECOND else (6, "ms")
        whole, frac = divmod(u, 10**precision)
        return f"{sign}{whole}{_fraction(frac, precision)}{unit}"
    seconds, frac = divmod(u, SECOND)
    out = f"{seconds % 60}{_fraction(frac, 9)}s"
    minutes = seconds // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        hours = minutes // 60
        if hours:
            out = f"{hours}h{out}"
    return sign + out


def normalize_duration(value: object) -> str:
    """Parse then re-print a duration: ``90s`` -> ``1m30s``."""
    if not isinstance(value, str):
        raise UnitError(f"invalid duration {value!r}: must be a string such as '10s'")
    return format_duration(parse_duration(value))


def _to_int64(value: float) -> int:
    # Go converts an out-of-range float to the minimum int64 on amd64; compose prints that.
    if value != value or value >= _LIMIT or value < -_LIMIT:
        return -_LIMIT
    return int(value)


def parse_bytes(value: object) -> int:
    """Parse a byte size (``1g``, ``512m``, ``1.5GB``, ``1024`` or an integer) into bytes."""
    if isinstance(value, bool):
        raise UnitError(f"invalid size {value!r}: must be a number or a string such as '512m'")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # compose silently drops YAML floats here; truncating keeps the user's intent visible.
        return _to_int64(value)
    if not isinstance(value, str):
        raise UnitError(f"invalid size {value!r}: must be a number or a string such as '512m'")
    return _parse_size(value)


def _parse_size(text: str) -> int:
    sep = max(text.rfind(c) for c in _SIZE_NUMBER_CHARS)
    if sep == -1:
        raise UnitError(f"invalid size '{text}': expected a number such as '512m'")
    number = text[:sep] if text[sep] == " " else text[: sep + 1]
    suffix = text[sep + 1 :]
    try:
        size = float(number) if _is_go_float(number) else float("nan")
    except ValueError:
        size = float("nan")
    if size != size:
        raise UnitError(f"invalid size '{text}': '{number}' is not a number")
    if size < 0:
        raise UnitError(f"invalid size '{text}': sizes cannot be negative")
    if not suffix:
        return _to_int64(size)
    lowered = suffix.lower()
    if lowered == "b":
        return _to_int64(size)
    multiplier = _SIZE_UNITS.get(lowered[0])
    if multiplier is not None and lowered[1:] in ("", "b", "ib"):
        return _to_int64(size * multiplier)
    raise UnitError(f"invalid size '{text}': unknown suffix '{lowered}' (use b k m g t p)")


def _is_go_float(number: str) -> bool:
    """Whether Go's ParseFloat would accept ``number`` (Python also takes '_', 'nan', ' 1')."""
    if not number or number != number.strip() or "_" in number:
        return False
    return all(c in "0123456789.eE+-" for c in number)


def format_bytes(value: int) -> str:
    """Print a byte count as compose's ``config`` does: the integer as a string."""
    return str(value)


def normalize_bytes(value: object) -> str:
    """Parse then re-print a byte size: ``1g`` -> ``"1073741824"``."""
    return format_bytes(parse_bytes(value))
