"""A small declarative command layer on argparse, in place of click (which costs ~17 ms of
start-up on every command).

Commands are plain functions decorated with :func:`option` and :func:`argument` (listed top
to bottom as they appear in the help) and then :func:`command`; :class:`Group` nests them,
importing a lazily registered subcommand's module only when it runs. A group's callback may
return an object (the root's compose ``ProjectOptions``) that commands marked
:func:`pass_obj` receive first; it runs when a command first asks for that object, so a
group callback is for building the object only. Usage errors print one line and end with
status 2 (or the command's ``usage_exit_code``: docker's 125 for ``run``/``create``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_PARAMS = "__cli_params__"
_PASS_OBJ = "__cli_pass_obj__"
UNPROCESSED = "unprocessed"  # argument type: raw words, options included (with nargs=-1)


class UsageError(Exception):
    """Bad command-line input: one line on stderr and exit status 2 (or the command's)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.prog: str | None = None  # filled in by the command that failed


class FileError(Exception):
    """A file named on the command line cannot be read: ``Error: ...`` and exit status 1."""

    exit_code = 1

    def __init__(self, filename: str, hint: str | None = None) -> None:
        super().__init__(f"Could not open file {filename!r}: {hint or 'unknown error'}")


class Exit(Exception):
    """End the program with ``code`` and no message."""

    def __init__(self, code: int = 0) -> None:
        super().__init__(code)
        self.exit_code = code


class Abort(Exception):
    """The user ended a prompt (end of input or Ctrl-C)."""


class _HelpRequested(Exception):
    pass


class _VersionRequested(Exception):
    pass


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """Write a line to stdout (or stderr), flushed: the engine streams interleave with it."""
    stream = sys.stderr if err else sys.stdout
    text = "" if message is None else str(message)
    stream.write(text + "\n" if nl else text)
    stream.flush()


def prompt(text: str, hide_input: bool = False) -> str:
    """Ask for a non-empty value on the terminal (hidden for passwords)."""
    while True:
        try:
            if hide_input:
                import getpass

                value = getpass.getpass(f"{text}: ")
            else:
                sys.stdout.write(f"{text}: ")
                sys.stdout.flush()
                line = sys.stdin.readline()
                if not line:
                    raise EOFError
                value = line.rstrip("\r\n")
        except (EOFError, KeyboardInterrupt):
            sys.stdout.write("\n")
            raise Abort() from None
        if value:
            return value


def confirm(text: str, default: bool = False) -> bool:
    """Ask a yes/no question; an empty answer takes ``default``."""
    suffix = " [Y/n]: " if default else " [y/N]: "
    while True:
        sys.stdout.write(text + suffix)
        sys.stdout.flush()
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            raise Abort() from None
        if not line:
            sys.stdout.write("\n")
            raise Abort()
        answer = line.strip().lower()
        if not answer:
            return default
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        echo("Error: invalid input", err=True)


def _bool_value(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "t", "yes", "y", "on"):
        return True
    if word in ("0", "false", "f", "no", "n", "off"):
        return False
    raise ValueError(text)


_bool_value.__name__ = "boolean"  # argparse names the type in its error message


class Param:
    """One option or positional argument of a command (a plain class: importing
    dataclasses would cost start-up time)."""

    def __init__(self, dest: str, flags: Sequence[str] = (), off_flags: Sequence[str] = (), *,
                 is_flag: bool = False, multiple: bool = False, default: Any = None,
                 type: Any = None, choices: Sequence[str] | None = None, nargs: int = 1,
                 required: bool = False, metavar: str | None = None, help: str = "",
                 show_default: bool = False) -> None:
        self.dest = dest
        self.flags = list(flags)  # empty for a positional argument
        self.off_flags = list(off_flags)  # --no-x of a --x/--no-x pair
        self.is_flag = is_flag
        self.multiple = multiple
        self.default = default
        self.type = type
        self.choices = choices
        self.nargs = nargs
        self.required = required
        self.metavar = metavar
        self.help = help
        self.show_default = show_default

    @property
    def is_argument(self) -> bool:
        return not self.flags

    def value(self, raw: Any) -> Any:
        """The parsed value as the callback gets it (tuples for repeated values)."""
        if self.multiple or (self.is_argument and self.nargs == -1):
            return tuple(raw or ())
        return raw


def _attach(func: F, param: Param) -> F:
    func.__dict__.setdefault(_PARAMS, []).append(param)
    return func


def _dest_of(flags: Sequence[str]) -> str:
    first_long = next((f for f in flags if f.startswith("--")), flags[0])
    return first_long.lstrip("-").replace("-", "_").lower()


def option(*decls: str, is_flag: bool = False, multiple: bool = False, default: Any = None,
           type: Any = None, choices: Sequence[str] | None = None, metavar: str | None = None,
           help: str = "", show_default: bool = False) -> Callable[[F], F]:
    """Declare an option: its flags (``"-f", "--file"``; ``"--x/--no-x"`` for an on/off pair)
    and, optionally, a bare name for the callback's keyword argument."""
    flags: list[str] = []
    off: list[str] = []
    dest = None
    for decl in decls:
        if "/" in decl:
            on_flag, off_flag = decl.split("/", 1)
            flags.append(on_flag)
            off.append(off_flag)
            is_flag = True
        elif decl.startswith("-"):
            flags.append(decl)
        else:
            dest = decl
    param = Param(dest=dest or _dest_of(flags), flags=flags, off_flags=off, is_flag=is_flag,
                  multiple=multiple, type=type, choices=choices, metavar=metavar, help=help,
                  show_default=show_default,
                  default=(bool(default) if is_flag else default))
    return lambda func: _attach(func, param)


def argument(name: str, nargs: int = 1, required: bool | None = None, type: Any = None,
             metavar: str | None = None) -> Callable[[F], F]:
    """Declare a positional argument; ``nargs=-1`` takes all remaining words."""
    needed = (nargs != -1) if required is None else required
    param = Param(dest=name, nargs=nargs, required=needed, type=type, metavar=metavar)
    return lambda func: _attach(func, param)


def pass_obj(func: F) -> F:
    """Give the callback the enclosing group's object (e.g. ProjectOptions) first."""
    func.__dict__[_PASS_OBJ] = True
    return func


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing and exiting.

    Help is rendered by :class:`Command`, never by argparse; but ``add_argument`` builds a
    formatter for every parameter to check its metavar, and a default formatter asks the
    terminal for its size each time (about 5 ms for the ~70 options of ``run``): ours has
    a fixed width.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(formatter_class=_FixedWidthFormatter, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _FixedWidthFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)


class _Raise(argparse.Action):
    """An eager flag (--help, --version): raise as soon as it is seen."""

    def __init__(self, option_strings: list[str], dest: str, exc: type[Exception],
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.exc = exc

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        raise self.exc()


class Command:
    """A command: its parameters, its callback, and how it parses and reports errors."""

    def __init__(self, name: str, callback: Callable[..., Any], params: list[Param], *,
                 help: str = "", help_flags: Sequence[str] | None = None,
                 interspersed: bool = True, usage_exit_code: int = 2) -> None:
        self.name = name
        self.callback = callback
        self.params = params
        self.help = help
        self.help_flags = list(help_flags) if help_flags is not None else None
        self.interspersed = interspersed
        self.usage_exit_code = usage_exit_code
        self.pass_obj = bool(getattr(callback, _PASS_OBJ, False))

    @property
    def short_help(self) -> str:
        """The first sentence of the help, for a group's command list."""
        first = self.help.strip().split("\n\n")[0].replace("\n", " ")
        return first.split(". ")[0].rstrip(".") + "." if first else ""

    def _help_flags(self, inherited: Sequence[str]) -> list[str]:
        return self.help_flags if self.help_flags is not None else list(inherited)

    def _raw(self, param: Param) -> bool:
        return param.type == UNPROCESSED and not self.interspersed

    def parser(self, prog: str, help_flags: Sequence[str]) -> _Parser:
        """The argparse parser of this command's parameters."""
        parser = _Parser(prog=prog, add_help=False, allow_abbrev=False)
        for param in self.params:
            if param.is_argument:
                self._add_argument(parser, param)
            else:
                _add_option(parser, param)
        if help_flags:
            parser.add_argument(*help_flags, action=_Raise, exc=_HelpRequested)
        return parser

    def _add_argument(self, parser: _Parser, param: Param) -> None:
        kwargs: dict[str, Any] = {"metavar": param.metavar or param.dest.upper()}
        if param.nargs == -1:
            kwargs["nargs"] = argparse.REMAINDER if self._raw(param) else (
                "+" if param.required else "*")
        elif not param.required:
            kwargs["nargs"] = "?"
        if param.type not in (None, UNPROCESSED):
            kwargs["type"] = param.type
        parser.add_argument(param.dest, **kwargs)

    def join_values(self, args: Sequence[str]) -> list[str]:
        """``-e -x`` as ``-e-x`` and ``--name -x`` as ``--name=-x``: an option's value may
        start with a dash (as with click and docker), which argparse would take for a flag."""
        takes_value = {f for p in self.params if not (p.is_argument or p.is_flag)
                       for f in p.flags}
        out: list[str] = []
        i = 0
        while i < len(args):
            word = args[i]
            if word == "--" or (not self.interspersed and not word.startswith("-")):
                return out + list(args[i:])
            if word in takes_value and i + 1 < len(args):
                value = args[i + 1]
                out.append(f"{word}={value}" if word.startswith("--") else word + value)
                i += 2
                continue
            out.append(word)
            i += 1
        return out

    def parse(self, args: Sequence[str], prog: str, help_flags: Sequence[str]) -> dict[str, Any]:
        """The callback's keyword arguments from the command line."""
        parser = self.parser(prog, help_flags)
        raw = any(self._raw(p) for p in self.params)
        if self.interspersed and not raw:
            namespace = parser.parse_intermixed_args(self.join_values(args))
        else:
            namespace = parser.parse_args(self.join_values(args))
        values = {p.dest: p.value(getattr(namespace, p.dest)) for p in self.params}
        for param in self.params:
            missing = param.required and not values[param.dest]
            if param.is_argument and param.nargs == -1 and missing:
                raise UsageError("the following arguments are required: "
                                 + (param.metavar or param.dest.upper()))
        return values

    def main(self, args: Sequence[str], prog: str, obj: Any = None,
             help_flags: Sequence[str] = ("-h", "--help")) -> Any:
        """Parse ``args`` and run the callback; usage errors carry this command's name."""
        flags = self._help_flags(help_flags)
        try:
            kwargs = self.parse(args, prog, flags)
        except _HelpRequested:
            echo(self.format_help(prog, flags))
            return 0
        except UsageError as err:
            err.prog = err.prog or prog
            err.exit_code = self.usage_exit_code
            raise
        try:
            return self.invoke(obj, kwargs)
        except UsageError as err:
            err.prog = err.prog or prog
            raise

    def invoke(self, obj: Any, kwargs: dict[str, Any]) -> Any:
        """Call the callback (with the group's object first if it asked for it)."""
        if self.pass_obj:
            return self.callback(_resolve(obj), **kwargs)
        return self.callback(**kwargs)

    def usage(self, prog: str) -> str:
        """``Usage: prog [OPTIONS] ARGS``."""
        words = [prog, "[OPTIONS]"]
        for param in self.params:
            if param.is_argument:
                name = param.metavar or param.dest.upper()
                name = f"{name}..." if param.nargs == -1 else name
                words.append(name if param.required else f"[{name}]")
        return "Usage: " + " ".join(words)

    def option_rows(self, help_flags: Sequence[str]) -> list[tuple[str, str]]:
        """(flags, help) per option, help last."""
        rows = [_option_row(p) for p in self.params if not p.is_argument]
        if help_flags:
            rows.append((", ".join(help_flags), "Show this message and exit."))
        return rows

    def format_help(self, prog: str, help_flags: Sequence[str]) -> str:
        """The ``--help`` text."""
        parts = [self.usage(prog)]
        if self.help.strip():
            parts.append(_indent(self.help.strip()))
        parts.append("Options:\n" + _table(self.option_rows(help_flags)))
        return "\n\n".join(parts)


def _add_option(parser: argparse.ArgumentParser, param: Param) -> None:
    if param.is_flag:
        parser.add_argument(*param.flags, dest=param.dest, action="store_const", const=True,
                            default=param.default)
        if param.off_flags:
            parser.add_argument(*param.off_flags, dest=param.dest, action="store_const",
                                const=False)
        return
    kwargs: dict[str, Any] = {"dest": param.dest, "metavar": param.metavar}
    kwargs["action"] = "append" if param.multiple else "store"
    kwargs["default"] = None if param.multiple else param.default
    if param.type is bool:
        kwargs["type"] = _bool_value
    elif param.type is not None:
        kwargs["type"] = param.type
    if param.choices is not None:
        kwargs["choices"] = list(param.choices)
    parser.add_argument(*param.flags, **kwargs)


def _type_name(param: Param) -> str:
    if param.metavar:
        return param.metavar
    if param.choices is not None:
        return "[" + "|".join(param.choices) + "]"
    names = {int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}
    return names.get(param.type, "TEXT")


def _option_row(param: Param) -> tuple[str, str]:
    flags = ", ".join(param.flags)
    if param.off_flags:
        pairs = zip(param.flags, param.off_flags, strict=True)
        flags = " / ".join(f"{on}/{off}" for on, off in pairs)
    if not param.is_flag:
        flags += " " + _type_name(param)
    text = param.help
    if param.show_default and param.default is not None:
        text = f"{text}  [default: {param.default}]".strip()
    return flags, text


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" if line else "" for line in text.splitlines())


def _table(rows: list[tuple[str, str]], line_width: int = 80) -> str:
    """Two columns; the right one wrapped to ``line_width`` (only help text pays for
    importing textwrap)."""
    import textwrap

    width = min(max((len(left) for left, _ in rows), default=0), 30)
    pad = " " * (width + 4)
    lines = []
    for left, right in rows:
        wrapped = textwrap.wrap(right, max(line_width - len(pad), 20)) or [""]
        first = f"  {left:{width}}  {wrapped[0]}" if len(left) <= width else (
            f"  {left}\n{pad}{wrapped[0]}")
        lines.append("\n".join([first.rstrip(), *(pad + more for more in wrapped[1:])]))
    return "\n".join(lines)


def command(name: str | None = None, *, help_flags: Sequence[str] | None = None,
            interspersed: bool = True, usage_exit_code: int = 2) -> Callable[[Callable[..., Any]],
                                                                             Command]:
    """Make a command of a function and the parameters declared on it.

    ``interspersed=False`` ends the options at the first positional word (``run IMAGE
    COMMAND...``); ``help_flags`` replaces the inherited ``-h/--help``.
    """

    def decorate(func: Callable[..., Any]) -> Command:
        params = list(reversed(func.__dict__.get(_PARAMS, [])))
        return Command(name or func.__name__.rstrip("_").replace("_", "-"), func, params,
                       help=func.__doc__ or "", help_flags=help_flags,
                       interspersed=interspersed, usage_exit_code=usage_exit_code)

    return decorate


class _Deferred:
    """A group's object, built on first use: commands that do not ask for it (``run``
    does not need the compose options) do not pay for its imports."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build: Callable[[], Any] | None = build
        self._value: Any = None

    def get(self) -> Any:
        if self._build is not None:
            build, self._build = self._build, None
            self._value = build()
        return self._value


def _resolve(obj: Any) -> Any:
    return obj.get() if isinstance(obj, _Deferred) else obj


class Group(Command):
    """A command of subcommands, registered directly or lazily as ``"module:attribute"``."""

    def __init__(self, name: str, callback: Callable[..., Any] | None = None,
                 params: list[Param] | None = None, *, help: str = "",
                 lazy: dict[str, str] | None = None, version: str | None = None) -> None:
        super().__init__(name, callback or (lambda **_: None), params or [], help=help,
                         interspersed=False)  # options end at the subcommand's name
        self.commands: dict[str, Command] = {}
        self.lazy = dict(lazy or {})
        self.version = version  # what --version prints

    def add_command(self, cmd: Command, name: str | None = None) -> None:
        """Register ``cmd`` (under ``name``, or its own)."""
        self.commands[name or cmd.name] = cmd

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[Callable[..., Any]],
                                                                         Command]:
        """Decorator: make a command of the function and register it here."""

        def decorate(func: Callable[..., Any]) -> Command:
            cmd = command(name, **kwargs)(func)
            self.add_command(cmd)
            return cmd

        return decorate

    def get_command(self, name: str) -> Command | None:
        """The subcommand called ``name``, importing its module if it is registered lazily."""
        if name in self.commands:
            return self.commands[name]
        if name in self.lazy:
            module_name, attr = self.lazy[name].split(":")
            cmd = getattr(importlib.import_module(module_name), attr)
            assert isinstance(cmd, Command)
            return cmd
        return None

    def list_commands(self) -> list[str]:
        """Every subcommand name, sorted."""
        return sorted({*self.commands, *self.lazy})

    def parser(self, prog: str, help_flags: Sequence[str]) -> _Parser:
        parser = super().parser(prog, help_flags)
        if self.version is not None:
            parser.add_argument("--version", action=_Raise, exc=_VersionRequested)
        parser.add_argument("\0command", nargs="?", metavar="COMMAND")
        parser.add_argument("\0args", nargs=argparse.REMAINDER, metavar="ARGS")
        return parser

    def main(self, args: Sequence[str], prog: str, obj: Any = None,
             help_flags: Sequence[str] = ("-h", "--help")) -> Any:
        flags = self._help_flags(help_flags)
        parser = self.parser(prog, flags)
        try:
            namespace = parser.parse_args(self.join_values(args))
        except _HelpRequested:
            echo(self.format_help(prog, flags))
            return 0
        except _VersionRequested:
            echo(f"{prog}, version {self.version}")
            return 0
        except UsageError as err:
            err.prog = prog
            raise
        name = getattr(namespace, "\0command")
        if name is None:
            # as click: a group run without a command shows its help and fails
            echo(self.format_help(prog, flags), err=True)
            raise Exit(2)
        cmd = self.get_command(name)
        if cmd is None:
            unknown = UsageError(f"no such command: {name!r}")
            unknown.prog = prog
            raise unknown
        kwargs = {p.dest: p.value(getattr(namespace, p.dest)) for p in self.params}

        def build() -> Any:
            result = self.invoke(obj, kwargs)
            return _resolve(obj) if result is None else result

        return cmd.main(getattr(namespace, "\0args"), f"{prog} {name}", _Deferred(build), flags)

    def usage(self, prog: str) -> str:
        return f"Usage: {prog} [OPTIONS] COMMAND [ARGS]..."

    def option_rows(self, help_flags: Sequence[str]) -> list[tuple[str, str]]:
        rows = super().option_rows(help_flags)
        if self.version is not None:
            rows.insert(0, ("--version", "Show the version and exit."))
        return rows

    def format_help(self, prog: str, help_flags: Sequence[str]) -> str:
        rows = []
        for name in self.list_commands():
            cmd = self.get_command(name)
            rows.append((name, cmd.short_help if cmd is not None else ""))
        return super().format_help(prog, help_flags) + "\n\nCommands:\n" + _table(rows)


def group(name: str | None = None, *, lazy: dict[str, str] | None = None,
          version: str | None = None) -> Callable[[Callable[..., Any]], Group]:
    """Make a group of a function (run once, when a subcommand first asks for the object it
    returns) and the options declared on it; with ``version``, the
    group has a ``--version`` flag that prints it."""

    def decorate(func: Callable[..., Any]) -> Group:
        params = list(reversed(func.__dict__.get(_PARAMS, [])))
        return Group(name or func.__name__, func, params, help=func.__doc__ or "", lazy=lazy,
                     version=version)

    return decorate


def run(root: Command, argv: Sequence[str] | None, prog: str) -> int:
    """Run ``root`` on ``argv`` (default: ``sys.argv[1:]``) and return the exit status;
    usage errors are reported in one line."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = root.main(args, prog)
    except UsageError as err:
        where = err.prog or prog
        echo(f"{where}: {err.message} (see '{where} --help')", err=True)
        return err.exit_code
    except FileError as err:
        echo(f"Error: {err}", err=True)
        return err.exit_code
    except Exit as err:
        return err.exit_code
    except Abort:
        echo("Aborted.", err=True)
        return 130
    return result if isinstance(result, int) else 0
