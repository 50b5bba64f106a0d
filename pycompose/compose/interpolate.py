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
- Where a ``${...}`` ends copies compose's two-step rule: the construct reaches the last ``}``
  of its line, then is cut at the brace that closes it when every ``{`` counts as an opener
  (``${U:-{x}y}`` gives ``{x}y``); text after the cut is interpolated and appended.
- ``$$`` is a literal ``$``; a ``$`` not followed by a name, ``{`` or ``$`` stays as is.
- Anything else after ``${`` (``${A B}``, ``${A:=x}``, ``${1A}``, ``${A[x]}``, an unclosed
  ``${``, a default that spans lines) is an invalid interpolation format.

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
    while True:
        dollar = text.find("$", pos)
        if dollar < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:dollar])
        nxt = text[dollar + 1 : dollar + 2]
        if nxt == "$":
            out.append("$")
            pos = dollar + 2
        elif nxt == "{":
            end = _match_end(text, dollar)
            if end < 0:
                raise ctx.invalid()
            out.append(_braced(text[dollar : end + 1], ctx))
            pos = end + 1
        else:
            match = _NAME.match(text, dollar + 1)
            if match is None:
                out.append("$")  # "$" before anything else is literal, as in compose
                pos = dollar + 1
            else:
                out.append(_get(match.group(), ctx))
                pos = match.end()


def _match_end(text: str, start: int) -> int:
    """End (the ``}``) of the ``${...}`` at ``start``, or -1 when it is not valid syntax.

    Like compose's pattern: ``${NAME}``, or a name, an operator and then anything up to the
    *last* ``}`` on the same line (the first closing brace is found afterwards, see
    :func:`_braced`).
    """
    name = _NAME.match(text, start + 2)
    if name is None:
        return -1
    after = name.end()
    char = text[after : after + 1]
    if char == "}":
        return after
    if char == ":":
        after += 1
        char = text[after : after + 1]
    if not char or char not in "-+?":
        return -1
    line_end = text.find("\n", after)
    return text.rfind("}", after, len(text) if line_end < 0 else line_end)


def _first_closing(text: str) -> int:
    """compose's brace counter: every ``{`` opens a level and hides the character after it."""
    depth = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "}":
            depth -= 1
            if depth == 0:
                return index
        if char == "{":
            depth += 1
            index += 1
        index += 1
    return -1


def _braced(match: str, ctx: _Context) -> str:
    """One ``${...}``; text after its first closing brace is interpolated and appended."""
    closing = _first_closing(match)
    rest = ""
    if closing >= 0:
        match, rest = match[: closing + 1], match[closing + 1 :]
    inner = match[2:-1]
    name = _NAME.match(inner)
    if name is None:  # pragma: no cover - _match_end checked the name
        raise ctx.invalid()
    value = _apply(name.group(), inner[name.end() :], ctx)
    return value + _expand(rest, ctx) if rest else value


def _apply(name: str, modifier: str, ctx: _Context) -> str:
    """``name`` with its operator and argument (``:-default``...), or a plain lookup."""
    if not modifier:
        return _get(name, ctx)
    colon = modifier[0] == ":"
    symbol = modifier[1] if colon else modifier[0]
    # The argument is interpolated first, used or not, as docker compose does.
    argument = _expand(modifier[2 if colon else 1 :], ctx)
    current = ctx.lookup(name)
    missing = current is None or (colon and current == "")
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
