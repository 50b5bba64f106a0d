"""Stage 2 of the loader: ``${VAR}`` interpolation in the values of one compose file.

The syntax and its corner cases follow docker compose v2 (compose-go's template package),
checked against the reference binary:

- ``$VAR`` and ``${VAR}``; names are ``[A-Za-z_][A-Za-z0-9_]*``. An unset variable becomes
  the empty string and is reported through ``warn``.
- ``${VAR:-default}`` / ``${VAR-default}``: the default when unset or empty / only when unset.
- ``${VAR:?message}`` / ``${VAR?message}``: an error when unset or empty / only when unset.
- ``${VAR:+other}`` / ``${VAR+other}``: ``other`` when set and non-empty / when set, else "".
- The text after the operator is itself interpolated first, always (so ``${A:-${B:?x}}``
  fails when B is unset even if A is set, as in docker compose).
- A ``${...}`` ends at the first ``}`` once every nested ``${`` is closed; a bare ``{`` does not
  nest. ``$$`` is a literal ``$``; a ``$`` not followed by a name, ``{`` or ``$`` stays as is.
- Anything else after ``${`` (``${A B}``, ``${A:=x}``, ``${1A}``, an unclosed ``${``) is an
  invalid interpolation format.

Only values are interpolated, never mapping keys; ``!override`` values are, ``!reset`` has
nothing to interpolate. Results stay strings: types are converted in normalisation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from pycompose.compose.errors import ComposeError, Path, format_path
from pycompose.compose.tags import Override

Lookup = Callable[[str], str | None]
Warn = Callable[[str], None]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class _Context:
    """Where the value being interpolated sits, for messages."""

    __slots__ = ("file", "lookup", "path", "template", "warn")

    def __init__(
        self, lookup: Lookup, warn: Warn | None, file: str | None, path: Path, template: str
    ) -> None:
        self.lookup = lookup
        self.warn = warn
        self.file = file
        self.path = path
        self.template = template

    def invalid(self) -> ComposeError:
        return ComposeError(
            f"invalid interpolation format {self.template!r}: "
            'a literal "$" must be written as "$$"',
            file=self.file,
            path=self.path,
        )

    def unset(self, name: str) -> None:
        if self.warn is not None:
            where = " ".join(x for x in (self.file, format_path(self.path)) if x)
            prefix = f"{where}: " if where else ""
            self.warn(f'{prefix}the "{name}" variable is not set, defaulting to a blank string')


def substitute(
    value: str,
    lookup: Lookup,
    *,
    file: str | None = None,
    path: Sequence[str | int] = (),
    warn: Warn | None = None,
) -> str:
    """Interpolate one string. Raises :class:`ComposeError` naming ``file`` and ``path``."""
    if "$" not in value:
        return value
    return _expand(value, _Context(lookup, warn, file, tuple(path), value))


def interpolate(
    data: Any,
    lookup: Lookup,
    file: str,
    *,
    warn: Warn | None = None,
    path: Sequence[str | int] = (),
) -> Any:
    """Return a copy of ``data`` with every string value interpolated (keys are left alone)."""
    return _walk(data, lookup, file, tuple(path), warn)


def _walk(data: Any, lookup: Lookup, file: str, path: Path, warn: Warn | None) -> Any:
    kind = type(data)
    if kind is str:
        if "$" not in data:
            return data
        return _expand(data, _Context(lookup, warn, file, path, data))
    if kind is dict:
        return {k: _walk(v, lookup, file, (*path, k), warn) for k, v in data.items()}
    if kind is list:
        return [_walk(v, lookup, file, (*path, i), warn) for i, v in enumerate(data)]
    if kind is Override:
        return Override(_walk(data.value, lookup, file, path, warn))
    return data


def _expand(text: str, ctx: _Context) -> str:
    """The interpolation scanner: left to right, one ``$`` construct at a time."""
    out: list[str] = []
    pos = 0
    size = len(text)
    while True:
        dollar = text.find("$", pos)
        if dollar < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:dollar])
        nxt = text[dollar + 1] if dollar + 1 < size else ""
        if nxt == "$":
            out.append("$")
            pos = dollar + 2
        elif nxt == "{":
            end = _closing_brace(text, dollar)
            if end < 0:
                raise ctx.invalid()
            out.append(_braced(text[dollar + 2 : end], ctx))
            pos = end + 1
        else:
            match = _NAME.match(text, dollar + 1)
            if match is None:
                out.append("$")  # "$" before anything else is literal, as in compose
                pos = dollar + 1
            else:
                out.append(_get(match.group(), ctx))
                pos = match.end()


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` at ``start``; only ``${`` opens a level."""
    depth = 0
    index = start
    size = len(text)
    while index < size:
        char = text[index]
        if char == "}":
            depth -= 1
            if depth == 0:
                return index
        elif char == "$" and text.startswith("{", index + 1):
            depth += 1
            index += 1
        index += 1
    return -1


def _braced(inner: str, ctx: _Context) -> str:
    """The inside of ``${...}``: a name, then nothing or an operator and its text."""
    match = _NAME.match(inner)
    if match is None:
        raise ctx.invalid()
    name = match.group()
    rest = inner[match.end() :]
    if not rest:
        return _get(name, ctx)
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise ctx.invalid()
    argument = _expand(rest[len(operator) :], ctx)
    current = ctx.lookup(name)
    colon = operator[0] == ":"
    missing = current is None or (colon and current == "")
    symbol = operator[-1]
    if symbol == "-":
        return argument if missing else str(current)
    if symbol == "+":
        return "" if missing else argument
    if missing:
        message = f"required variable {name} is missing a value"
        if argument:
            message += f": {argument}"
        raise ComposeError(message, file=ctx.file, path=ctx.path)
    return str(current)


def _get(name: str, ctx: _Context) -> str:
    value = ctx.lookup(name)
    if value is None:
        ctx.unset(name)
        return ""
    return value
