"""A small evaluator for the Go ``text/template`` subset that docker's ``--format`` uses.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming, comments, pipelines
(``a | b``), fields and chains (``.State.Pid``, ``$v.Name``, ``(index .X "k").Y``), variables
(``$x := ...``, ``$k, $v := range ...``), ``if``/``else if``/``else``, ``range`` (lists and
maps, maps in key order as Go does), ``with``, literals (strings, raw strings, numbers,
``true``/``false``/``nil``), Go's builtins (``and or not len index print printf println eq ne
lt le gt ge slice``) and docker's (``json join split lower upper title pad truncate``).
Values print like Go's ``%v``: ``map[a:1]``, ``[a b]``, ``<nil>``, ``<no value>`` for a
missing key. Anything else (``define``, ``template``, ``block``, ``break``) is refused with a
clear error rather than ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycompose.errors import PycomposeError


class TemplateError(PycomposeError):
    """The template does not parse, or failed while running."""


class _Missing:
    """A map lookup that found nothing: prints as ``<no value>``, is false."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()

_TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<chr>'(?:[^'\\]|\\.)+')|
    (?P<decl>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|
    (?P<num>[-+]?(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))|
    (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|
    (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)|
    (?P<ident>[A-Za-z_][A-Za-z0-9_]*)(?P<after>(?:\.[A-Za-z0-9_]+)*)
    )""",
    re.VERBOSE,
)


# -- the tree ---------------------------------------------------------------------------------


@dataclass
class _Cmd:
    """One command of a pipeline: operands, the first possibly a function name."""

    args: list[Any]


@dataclass
class _Pipe:
    decl: list[str]
    cmds: list[_Cmd]


@dataclass
class _Field:
    base: Any  # None for the dot, "$name" for a variable, or a nested _Pipe
    names: list[str]


@dataclass
class _Ident:
    name: str


@dataclass
class _Lit:
    value: Any


@dataclass
class _Block:
    kind: str  # "if", "range", "with"
    pipe: _Pipe
    body: list[Any] = field(default_factory=list)
    orelse: list[Any] = field(default_factory=list)


class Template:
    """A parsed template: ``Template(text).render(data)``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes = _Parser(text).parse()

    def render(self, data: Any) -> str:
        """Execute the template against ``data`` (dicts, lists, scalars, objects)."""
        out: list[str] = []
        _Exec(data, out).run(self.nodes, [{"$": data}], data)
        return "".join(out)


# -- parsing ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def _actions(self) -> Iterator[tuple[str, str]]:
        """("text", s) and ("action", s) pieces, with trim markers applied."""
        pos, pending_trim = 0, False
        while True:
            start = self.text.find("{{", pos)
            if start < 0:
                tail = self.text[pos:]
                yield "text", tail.lstrip() if pending_trim else tail
                return
            end = self.text.find("}}", start + 2)
            if end < 0:
                raise TemplateError(f"template: unclosed action at offset {start}")
            lit = self.text[pos:start]
            if pending_trim:
                lit = lit.lstrip()
            inner = self.text[start + 2 : end]
            if inner.startswith("- ") or inner == "-":
                lit, inner = lit.rstrip(), inner[1:]
            pending_trim = inner.endswith(" -")
            if pending_trim:
                inner = inner[:-1]
            yield "text", lit
            yield "action", inner.strip()
            pos = end + 2

    def parse(self) -> list[Any]:
        root: list[Any] = []
        stack: list[tuple[_Block, list[Any]]] = []
        current = root
        for kind, piece in self._actions():
            if kind == "text":
                if piece:
                    current.append(piece)
                continue
            if piece.startswith("/*"):
                continue
            word, _, rest = piece.partition(" ")
            if word in ("if", "range", "with"):
                block = _Block(word, self._pipe(rest))
                current.append(block)
                stack.append((block, current))
                current = block.body
            elif word == "else":
                if not stack:
                    raise TemplateError("template: unexpected {{else}}")
                block, _parent = stack[-1]
                if current is block.orelse:
                    raise TemplateError("template: more than one {{else}}")
                current = block.orelse
                sub, _, cond = rest.strip().partition(" ")
                if sub in ("if", "with"):  # else if / else with: a nested block closed by end
                    nested = _Block(sub, self._pipe(cond))
                    current.append(nested)
                    stack.append((nested, current))
                    current = nested.body
                    nested.kind = f"{sub}-chained"
                elif sub:
                    raise TemplateError(f"template: unexpected {piece!r}")
            elif word == "end":
                if not stack:
                    raise TemplateError("template: unexpected {{end}}")
                block, current = stack.pop()
                while block.kind.endswith("-chained"):
                    block.kind = block.kind.split("-")[0]
                    block, current = stack.pop()
            elif word in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"template: {{{{{word}}}}} is not supported")
            else:
                current.append(self._pipe(piece))
        if stack:
            raise TemplateError(f"template: unexpected EOF (unclosed {{{{{stack[-1][0].kind}}}}})")
        return root

    def _pipe(self, text: str) -> _Pipe:
        tokens = self._tokens(text)
        pipe, rest = self._parse_pipe(tokens)
        if rest:
            raise TemplateError(f"template: unexpected {rest[0][1]!r} in {text!r}")
        if not pipe.cmds:
            raise TemplateError(f"template: missing value in {{{{{text}}}}}")
        return pipe

    @staticmethod
    def _tokens(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN_RE.match(text, pos)
            if not m or m.end() == pos:
                raise TemplateError(f"template: bad syntax at {text[pos:]!r}")
            kind = m.lastgroup or ""
            if kind == "after":
                kind = "ident"
            tokens.append((kind, m.group(0).strip()))
            pos = m.end()
        return tokens

    def _parse_pipe(self, tokens: list[tuple[str, str]]) -> tuple[_Pipe, list[tuple[str, str]]]:
        decl: list[str] = []
        # "$x :=", "$k, $v :="
        if tokens and tokens[0][0] == "var":
            names = [tokens[0][1]]
            i = 1
            if len(tokens) > 2 and tokens[1][0] == "comma" and tokens[2][0] == "var":
                names.append(tokens[2][1])
                i = 3
            if len(tokens) > i and tokens[i][0] in ("decl", "assign"):
                decl, tokens = names, tokens[i + 1 :]
        cmds: list[_Cmd] = []
        args: list[Any] = []
        while tokens:
            kind, text = tokens[0]
            if kind == "rp":
                break
            tokens = tokens[1:]
            if kind == "pipe":
                if not args:
                    raise TemplateError("template: missing command before '|'")
                cmds.append(_Cmd(args))
                args = []
            elif kind == "lp":
                inner, tokens = self._parse_pipe(tokens)
                if not tokens or tokens[0][0] != "rp":
                    raise TemplateError("template: unclosed '('")
                tokens = tokens[1:]
                chain: list[str] = []
                if tokens and tokens[0][0] == "field" and tokens[0][1] != ".":
                    chain = tokens[0][1].split(".")[1:]
                    tokens = tokens[1:]
                args.append(_Field(inner, chain))
            else:
                args.append(_operand(kind, text))
        if args:
            cmds.append(_Cmd(args))
        elif cmds:
            raise TemplateError("template: missing command after '|'")
        return _Pipe(decl, cmds), tokens


def _operand(kind: str, text: str) -> Any:
    if kind == "field":
        return _Field(None, [] if text == "." else text.split(".")[1:])
    if kind == "var":
        name, *names = text.split(".")
        return _Field(name, names)
    if kind == "str":
        return _Lit(json.loads(text))
    if kind == "raw":
        return _Lit(text[1:-1])
    if kind == "chr":
        return _Lit(ord(json.loads('"' + text[1:-1] + '"')))
    if kind == "num":
        value = float(text) if any(c in text for c in ".eE") and "x" not in text else int(text, 0)
        return _Lit(value)
    if kind == "ident":
        if text in ("true", "false"):
            return _Lit(text == "true")
        if text == "nil":
            return _Lit(None)
        if "." in text:
            raise TemplateError(f"template: function {text!r} cannot have fields")
        return _Ident(text)
    raise TemplateError(f"template: unexpected {text!r}")


# -- running ------------------------------------------------------------------------------------


class _Exec:
    def __init__(self, root: Any, out: list[str]) -> None:
        self.root = root
        self.out = out

    def run(self, nodes: list[Any], scope: list[dict[str, Any]], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, _Pipe):
                value = self.pipe(node, scope, dot)
                if not node.decl:
                    self.out.append(go_str(value))
            else:
                self.block(node, scope, dot)

    def block(self, node: _Block, scope: list[dict[str, Any]], dot: Any) -> None:
        inner = [*scope, {}]
        if node.kind == "range":
            self.range(node, inner, dot)
            return
        value = self.pipe(node.pipe, inner, dot, declare=node.kind != "range")
        if truth(value):
            self.run(node.body, inner, value if node.kind == "with" else dot)
        else:
            self.run(node.orelse, [*scope, {}], dot)

    def range(self, node: _Block, scope: list[dict[str, Any]], dot: Any) -> None:
        value = self.pipe(_Pipe([], node.pipe.cmds), scope, dot)
        if isinstance(value, Mapping):
            items: list[tuple[Any, Any]] = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise TemplateError(f"template: range can't iterate over {go_str(value)}")
        if not items:
            self.run(node.orelse, scope, dot)
            return
        for key, item in items:
            local = {**scope[-1]}
            if len(node.pipe.decl) == 1:
                local[node.pipe.decl[0]] = item
            elif len(node.pipe.decl) == 2:
                local[node.pipe.decl[0]], local[node.pipe.decl[1]] = key, item
            self.run(node.body, [*scope[:-1], local], item)

    def pipe(self, pipe: _Pipe, scope: list[dict[str, Any]], dot: Any,
             declare: bool = True) -> Any:
        value: Any = MISSING
        first = True
        for cmd in pipe.cmds:
            value = self.command(cmd, scope, dot, None if first else (value,))
            first = False
        if declare and pipe.decl:
            scope[-1][pipe.decl[0]] = value
        return value

    def command(self, cmd: _Cmd, scope: list[dict[str, Any]], dot: Any,
                piped: tuple[Any, ...] | None) -> Any:
        head, rest = cmd.args[0], cmd.args[1:]
        extra = tuple(self.operand(a, scope, dot) for a in rest) + (piped or ())
        if isinstance(head, _Ident):
            func = FUNCS.get(head.name)
            if func is None:
                raise TemplateError(f'template: function "{head.name}" not defined')
            return func(*extra)
        value = self.operand(head, scope, dot, call_args=extra if extra else None)
        return value

    def operand(self, node: Any, scope: list[dict[str, Any]], dot: Any,
                call_args: tuple[Any, ...] | None = None) -> Any:
        if isinstance(node, _Lit):
            return node.value
        if isinstance(node, _Ident):
            func = FUNCS.get(node.name)
            if func is None:
                raise TemplateError(f'template: function "{node.name}" not defined')
            return func()
        assert isinstance(node, _Field)
        if node.base is None:
            value = dot
        elif isinstance(node.base, _Pipe):
            value = self.pipe(node.base, scope, dot, declare=False)
        else:
            value = _lookup_var(scope, node.base)
        for i, name in enumerate(node.names):
            last = i == len(node.names) - 1
            value = field_of(value, name, call_args if last else None)
        if call_args and not node.names:
            raise TemplateError("template: can't give arguments to a non-function")
        return value


def _lookup_var(scope: list[dict[str, Any]], name: str) -> Any:
    for frame in reversed(scope):
        if name in frame:
            return frame[name]
    raise TemplateError(f"template: undefined variable: {name}")


def field_of(value: Any, name: str, args: tuple[Any, ...] | None = None) -> Any:
    """``value.name``: a map key (missing gives ``<no value>``), attribute or method."""
    if isinstance(value, Mapping):
        found = value.get(name, MISSING)
        if found is MISSING and getattr(value, "strict", False):
            # a Go struct (docker's typed view): no such field is an error, as in docker
            raise TemplateError(f'template: executing at <.{name}>: map has no entry for '
                                f'key "{name}"')
    elif value is None or value is MISSING:
        raise TemplateError(f"template: nil pointer evaluating .{name}")
    elif hasattr(value, name) and not name.startswith("_"):
        found = getattr(value, name)
    else:
        raise TemplateError(
            f"template: can't evaluate field {name} in type {type(value).__name__}"
        )
    if callable(found):
        return found(*(args or ()))
    if args:
        raise TemplateError(f"template: {name} is not a method but has arguments")
    return found


# -- values -------------------------------------------------------------------------------------


def truth(value: Any) -> bool:
    """Go template truth: false, 0, nil, empty string/list/map are false."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    if isinstance(value, Mapping):
        return len(value) > 0
    return True


def go_str(value: Any) -> str:
    """Go's ``%v`` for JSON-like values."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if getattr(value, "go_struct", False):
        return "{" + " ".join(go_str(v) for v in value.values()) + "}"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def go_json(value: Any) -> str:
    """docker's ``json`` function: compact JSON, ``<>&`` left as they are. An object with
    ``as_json`` (a ``ps`` row) is encoded the way its Go ``MarshalJSON`` does: escaped."""
    if value is MISSING:
        value = None
    as_json = getattr(value, "as_json", None)
    if callable(as_json):
        text = json.dumps(as_json(), separators=(",", ":"), ensure_ascii=False)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    try:
        return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    except TypeError as err:
        raise TemplateError(f"template: json: {err}") from err


def _plain(value: Any) -> Any:
    """Typed wrappers back to JSON values (a nil slice or map is ``null``)."""
    if getattr(value, "go_nil", False):
        return None
    if isinstance(value, Mapping):
        absent = getattr(value, "absent", ())
        return {k: _plain(v) for k, v in value.items() if k not in absent}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _printf(fmt: str, *args: Any) -> str:
    items = list(args)

    def repl(m: re.Match[str]) -> str:
        verb = m.group(2)
        if verb == "%":
            return "%"
        if not items:
            return f"%!{verb}(MISSING)"
        arg = items.pop(0)
        if verb in "vs":
            text = go_str(arg)
        elif verb == "q":
            text = json.dumps(go_str(arg), ensure_ascii=False)
        elif verb == "d":
            text = str(int(arg))
        elif verb in "xX":
            text = format(int(arg), verb)
        elif verb in "feg":
            return ("%" + m.group(1) + verb) % float(arg)
        elif verb == "t":
            text = go_str(bool(arg))
        else:
            raise TemplateError(f"template: printf verb %{verb} is not supported")
        return ("%" + m.group(1) + "s") % text

    return re.sub(r"%([-+ #0]*\d*(?:\.\d+)?)([a-zA-Z%])", repl, fmt)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise TemplateError(f"template: index out of range: {go_str(key)}")
            value = value[key]
        else:
            raise TemplateError(f"template: can't index item of type {type(value).__name__}")
    return value


def _len(value: Any) -> int:
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value)
    raise TemplateError(f"template: len of type {type(value).__name__}")


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def run(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError as err:
            raise TemplateError(f"template: incompatible types for comparison: {err}") from err

    return run


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("template: missing argument for comparison")
    return any(a == b for b in others)


def _and(*args: Any) -> Any:
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1] if args else MISSING


def _or(*args: Any) -> Any:
    for arg in args:
        if truth(arg):
            return arg
    return args[-1] if args else MISSING


def _print(*args: Any) -> str:
    # Go's Sprint adds spaces only between operands when neither is a string.
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(arg)
    return out


def _slice(value: Any, *idx: int) -> Any:
    if not isinstance(value, (str, list, tuple)):
        raise TemplateError("template: can't slice this value")
    if len(idx) > 2:
        raise TemplateError("template: slice takes at most two indexes here")
    return value[idx[0]:idx[1] if len(idx) > 1 else None] if idx else value


def _pad(value: Any, before: int, after: int) -> str:
    return " " * int(before) + go_str(value) + " " * int(after)


def _truncate(value: Any, length: int) -> str:
    text = go_str(value)
    return text[: int(length)]


def _join(items: Sequence[Any], sep: str) -> str:
    if not isinstance(items, (list, tuple)):
        raise TemplateError("template: join needs a list")
    return sep.join(go_str(i) for i in items)


FUNCS: dict[str, Callable[..., Any]] = {
    "and": _and,
    "or": _or,
    "not": lambda v: not truth(v),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _print,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "printf": _printf,
    "eq": _eq,
    "ne": lambda a, b: a != b,
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
    "json": go_json,
    "join": _join,
    "split": lambda s, sep: go_str(s).split(sep),
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": lambda s: go_str(s).title(),
    "pad": _pad,
    "truncate": _truncate,
}
