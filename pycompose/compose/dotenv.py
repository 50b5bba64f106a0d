"""``.env`` files (the project's ``.env``, ``--env-file`` and a service's ``env_file``).

The rules are those of docker compose v2 (compose-go's dotenv parser), checked against the
reference binary:

- blank lines and lines starting with ``#`` are skipped; ``export KEY=...`` is ``KEY=...``;
- ``KEY=VALUE`` or ``KEY: VALUE``; spaces around the key and before the value are dropped;
  a key holds letters, digits and ``_ . - [ ]``, and anything else is an error;
- a bare ``KEY`` takes its value from ``lookup`` and is left out when that has none;
- unquoted values run to the end of the line, lose trailing spaces and an inline comment
  that starts with `` #``, and are interpolated;
- ``'single quoted'`` values are literal (only ``\\'`` becomes ``'``) and may span lines;
- ``"double quoted"`` values may span lines, turn ``\\n \\r \\t \\a \\b \\f \\v \\\\ \\"`` into the
  characters they name, keep ``\\$`` as a literal ``$``, keep other backslashes, and are
  interpolated;
- whatever follows a closing quote on the same line is read as the next statement (so
  ``A="x" # note`` is a comment and ``A='x' B=1`` also sets B), as docker compose does;
- interpolation (``$VAR``, ``${VAR:-default}``... as in compose files) looks a name up in
  ``lookup`` first and then in the keys set earlier in the same file.
"""

from __future__ import annotations

from collections.abc import Callable

from pycompose.compose.errors import ComposeError
from pycompose.compose.interpolate import Warn, substitute

_SPACE = frozenset("\t\v\f\r \x85\xa0")  # spaces that are not line breaks
_KEY_EXTRA = frozenset("_.-[]")
_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "$": "$$",  # "$$" stays a literal "$" through interpolation
    "0": "\\",  # docker compose turns a backslash-zero into a lone backslash
}  # fmt: skip


def parse_dotenv(
    text: str,
    name: str,
    lookup: Callable[[str], str | None],
    *,
    warn: Warn | None = None,
) -> dict[str, str]:
    """Parse a ``.env`` file; errors are :class:`ComposeError` naming ``name`` and the line."""
    return _Parser(text.removeprefix("\ufeff"), name, lookup, warn).run()


class _Parser:
    def __init__(
        self, text: str, name: str, lookup: Callable[[str], str | None], warn: Warn | None
    ) -> None:
        self.text = text
        self.name = name
        self.lookup = lookup
        self.warn = warn
        self.pos = 0
        self.out: dict[str, str] = {}

    def line(self, pos: int | None = None) -> int:
        return self.text.count("\n", 0, self.pos if pos is None else pos) + 1

    def error(self, message: str, pos: int | None = None) -> ComposeError:
        return ComposeError(message, file=self.name, line=self.line(pos))

    def run(self) -> dict[str, str]:
        while self.next_statement():
            start = self.pos
            key, inherited = self.read_key()
            if inherited:
                value = self.lookup(key)
                if value is not None:
                    self.out[key] = value
                continue
            self.out[key] = self.read_value(key, start)
        return self.out

    def next_statement(self) -> bool:
        """Skip blank space and comment lines; False at the end of the file."""
        text = self.text
        while True:
            while self.pos < len(text) and text[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(text):
                return False
            if text[self.pos] != "#":
                return True
            newline = text.find("\n", self.pos)
            if newline < 0:
                return False
            self.pos = newline

    def read_key(self) -> tuple[str, bool]:
        """The key and whether it is bare (``KEY`` alone: inherited from ``lookup``)."""
        text, pos = self.text, self.pos
        if text.startswith("export", pos) and text[pos + 6 : pos + 7] in _SPACE:
            pos += 6
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1
        start = pos
        inherited = True
        while pos < len(text):
            char = text[pos]
            if char in "=:":
                inherited = False
                break
            if char == "\n":
                break
            if not (char in _SPACE or char.isalnum() or char in _KEY_EXTRA):
                end = text.find("\n", start)
                near = text[start : end if end >= 0 else len(text)]
                raise self.error(f"unexpected character {char!r} in variable name {near!r}")
            pos += 1
        key = text[start:pos].rstrip()
        if any(c.isspace() for c in key):
            raise self.error(f"key {key!r} cannot contain a space")
        self.pos = pos + 1
        return key, inherited

    def read_value(self, key: str, start: int) -> str:
        text = self.text
        while self.pos < len(text) and text[self.pos] in _SPACE:
            self.pos += 1
        quote = text[self.pos : self.pos + 1]
        if quote not in ("'", '"'):
            return self.unquoted(key, start)
        begin = self.pos + 1
        index = begin
        while index < len(text):
            char = text[index]
            if char == "\\":
                index += 2
                continue
            if char == quote:
                break
            index += 1
        else:
            end = text.find("\n", self.pos)
            shown = text[self.pos : end if end >= 0 else len(text)]
            raise self.error(f"unterminated quoted value {shown}", start)
        raw = text[begin:index]
        self.pos = index + 1
        if quote == "'":
            return raw.replace("\\'", "'")
        return self.interpolate(_unescape(raw), key, start)

    def unquoted(self, key: str, start: int) -> str:
        text = self.text
        end = text.find("\n", self.pos)
        if end < 0:
            end = len(text)
        raw = text[self.pos : end]
        self.pos = end
        comment = raw.find(" #")
        if comment >= 0:
            raw = raw[:comment]
        return self.interpolate(raw.rstrip(), key, start)

    def interpolate(self, template: str, key: str, start: int) -> str:
        out = self.out

        def chained(variable: str) -> str | None:
            found = self.lookup(variable)
            return out.get(variable) if found is None else found

        try:
            return substitute(template, chained, file=self.name, path=(key,), warn=self.warn)
        except ComposeError as err:
            raise ComposeError(
                err.message, file=self.name, line=self.line(start), path=(key,)
            ) from err


def _unescape(raw: str) -> str:
    """Backslash escapes of a double-quoted value (before interpolation)."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    index = 0
    while True:
        slash = raw.find("\\", index)
        if slash < 0 or slash + 1 >= len(raw):
            out.append(raw[index:])
            return "".join(out)
        out.append(raw[index:slash])
        char = raw[slash + 1]
        out.append(_ESCAPES.get(char, "\\" + char))
        index = slash + 2
