"""Errors of the compose loader: each names the file, the line and the dotted path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pycompose.errors import PycomposeError

Path = tuple[str | int, ...]
"""A location inside a compose document: ("services", "web", "ports", 0)."""


def format_path(path: Sequence[str | int]) -> str:
    """Render a path the way people read it: ``services.web.ports[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class ComposeError(PycomposeError):
    """One problem in a compose project, located as precisely as we know."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: Sequence[str | int] | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.path: Path = tuple(path) if path is not None else ()
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.path:
            where = f"{where} {format_path(self.path)}" if where else format_path(self.path)
        return f"{where}: {self.message}" if where else self.message


class ComposeErrors(ComposeError):
    """Several problems found at once (schema validation reports them all)."""

    def __init__(self, errors: Iterable[ComposeError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
