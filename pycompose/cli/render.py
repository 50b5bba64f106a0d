"""Rendering shared by CLI commands, in docker's formats: tabwriter tables, rough durations
(``About a minute``), decimal sizes (``2.13MB``), port lists and ``--format`` handling.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pycompose.humanize import human_duration

ELLIPSIS = "…"


def ago(created: float, now: float | None = None) -> str:
    """``5 seconds ago`` for a Unix time."""
    return human_duration((time.time() if now is None else now) - created) + " ago"


def human_size(size: float) -> str:
    """Decimal size with 3 significant digits, as docker prints it (``2.13MB``, ``0B``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    value = float(size)
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.3g}{units[i]}"


def go_time(ts: float) -> str:
    """Go's default time format for local times: ``2024-01-01 10:00:00 +0000 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(ts))


def tabwrite(rows: Sequence[Sequence[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Docker's tabwriter: every column but the last padded to its widest cell + padding."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = []
    for i in range(ncols - 1):
        lengths = [len(r[i]) for r in rows if i < len(r) - 1]
        widths.append(max(minwidth, max(lengths, default=0) + padding))
    lines: list[str] = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("".join(cells))
    return "\n".join(lines)


def ellipsis(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, the last one an ellipsis, as docker does."""
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` for the characters a command line may hold."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def display_ports(ports: Iterable[Mapping[str, Any]]) -> str:
    """The PORTS column: consecutive ports grouped into ranges, like docker's ``ps``."""
    def key(p: Mapping[str, Any]) -> tuple[int, str, int, str]:
        return (int(p.get("PrivatePort") or 0), str(p.get("IP") or ""),
                int(p.get("PublicPort") or 0), str(p.get("Type") or ""))

    groups: dict[str, list[int]] = {}
    result: list[str] = []
    host_mappings: list[str] = []

    def form(group_key: str, first: int, last: int) -> str:
        ip, _, kind = group_key.rpartition("/")
        text = str(first) if first == last else f"{first}-{last}"
        if ip:
            text = f"{_join_host_port(ip, text)}->{text}"
        return f"{text}/{kind}"

    for port in sorted(ports, key=key):
        private, ip, public, kind = key(port)
        group_key = kind
        if ip:
            if public != private:
                host_mappings.append(f"{_join_host_port(ip, str(public))}->{private}/{kind}")
                continue
            group_key = f"{ip}/{kind}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(form(group_key, group[0], group[1]))
            groups[group_key] = [private, private]
    result += [form(k, g[0], g[1]) for k, g in groups.items()]
    return ", ".join(result + host_mappings)


def header_name(field: str, headers: Mapping[str, str]) -> str:
    """The column title docker shows for a ``{{.Field}}`` in a table format."""
    return headers.get(field, field.upper())


class _Title(str):
    """A column title that also answers a method-style field (``{{.Label "x"}}``)."""

    def __call__(self, *args: Any) -> str:
        return str(args[0]) if args else str(self)  # docker titles {{.Label "k"}} as "k"


class HeaderContext(dict[str, Any]):
    """What a ``table`` format's header row is rendered against: each field is its title."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__()
        self.headers = headers

    def get(self, key: str, default: Any = None) -> Any:
        return _Title(header_name(key, self.headers))

    def __contains__(self, key: object) -> bool:
        return True


def format_rows(fmt: str, rows: Sequence[Any], headers: Mapping[str, str]) -> str:
    """Render ``rows`` with a docker ``--format``: ``table``, ``table TEMPLATE``, ``json`` or a
    Go template. Table output goes through the tabwriter; the rest is printed as is."""
    from pycompose.cli.gotemplate import Template, go_json

    if fmt == "json":
        return "\n".join(go_json(r) for r in rows)
    is_table = fmt.startswith("table")
    text = fmt[5:].strip() if is_table else fmt
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    template = Template(text)
    lines = [template.render(r) for r in rows]
    if not is_table:
        return "\n".join(lines)
    header = Template(text).render(HeaderContext(headers))
    return tabwrite([line.split("\t") for line in [header, *lines]])
