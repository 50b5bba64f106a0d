"""The argparse-based command layer of the CLI: parsing, groups, help, errors, exit codes."""

from __future__ import annotations

import importlib
import io
import sys
import types
from typing import Any

import pytest

from pycompose.cli import framework as fw

Calls = list[dict[str, Any]]


def _tool(calls: Calls) -> fw.Group:
    """A small tree: root (with a passed-on object) > show, run (docker-like), sub > hello."""

    @fw.group("tool", version="1.2.3")
    @fw.option("-f", "--file", "files", multiple=True, help="Files.")
    @fw.option("-p", "--project-name", help="Name.")
    def root(files: tuple[str, ...], project_name: str | None) -> dict[str, Any]:
        """The tool.

        More words here."""
        calls.append({"root": project_name})
        return {"files": files, "name": project_name}

    @fw.command("show")
    @fw.argument("items", nargs=-1)
    @fw.option("--format", "fmt", choices=["yaml", "json"], default="yaml")
    @fw.option("-q", "--quiet", is_flag=True, help="Say nothing.")
    @fw.option("-n", "--last", type=int, default=-1, help="Count.")
    @fw.option("--human", type=bool, default=True)
    @fw.option("--pause/--no-pause", default=True, help="Pause.")
    @fw.option("-o", "--output", help="Write here.")
    @fw.pass_obj
    def show(obj: dict[str, Any], **kwargs: Any) -> int:
        """Show things. Second sentence."""
        calls.append({"obj": obj, **kwargs})
        return 0

    @fw.command("run", help_flags=["--help"], interspersed=False, usage_exit_code=125)
    @fw.argument("image")
    @fw.argument("command", nargs=-1, type=fw.UNPROCESSED)
    @fw.option("-h", "--hostname", default="")
    @fw.option("-d", "--detach", is_flag=True)
    @fw.option("-e", "--env", multiple=True)
    def run(**kwargs: Any) -> None:
        """Run it."""
        calls.append(kwargs)
        raise fw.Exit(7)

    @fw.group("sub")
    def sub() -> None:
        """Nested commands."""

    @sub.command("hello")
    @fw.argument("name", required=False)
    @fw.pass_obj
    def hello(obj: dict[str, Any], name: str | None) -> None:
        """Greet."""
        if name == "bad":
            raise fw.UsageError("bad name")
        fw.echo(f"hello {name} {obj['name']}")
        fw.echo("to stderr", err=True)

    root.add_command(show)
    root.add_command(run)
    root.add_command(sub)
    root.add_command(show, "list")
    return root


def call(argv: list[str]) -> tuple[int, Calls]:
    calls: Calls = []
    return fw.run(_tool(calls), argv, "tool"), calls


def test_options_flags_choices_and_defaults() -> None:
    code, calls = call(["-f", "a.yaml", "--file=b.yaml", "show", "x", "-q", "y", "-n", "3",
                        "--format", "json", "--no-pause", "--human", "no"])
    assert code == 0
    assert calls.pop(0) == {"root": None}
    assert calls == [{"obj": {"files": ("a.yaml", "b.yaml"), "name": None}, "items": ("x", "y"),
                      "fmt": "json", "quiet": True, "last": 3, "human": False, "pause": False,
                      "output": None}]
    code, calls = call(["-p", "proj", "list"])
    assert calls == [{"root": "proj"},
                     {"obj": {"files": (), "name": "proj"}, "items": (), "fmt": "yaml",
                      "quiet": False, "last": -1, "human": True, "pause": True,
                      "output": None}]


def test_option_values_may_start_with_a_dash() -> None:
    _, calls = call(["show", "-o", "-", "--format", "json", "-n", "-2"])
    assert (calls[-1]["output"], calls[-1]["last"]) == ("-", -2)
    # run does not ask for the root's object: the root callback never runs
    _, calls = call(["-p", "-x", "run", "-e", "-A", "--hostname", "--h", "img", "-e", "B"])
    assert calls == [{"image": "img", "command": ("-e", "B"), "hostname": "--h",
                      "detach": False, "env": ("-A",)}]


def test_options_end_at_the_first_word_and_the_rest_is_raw() -> None:
    code, calls = call(["run", "-d", "-h", "box", "-e", "A=1", "img", "sh", "-c", "-d x"])
    assert code == 7
    assert calls == [{"image": "img", "command": ("sh", "-c", "-d x"), "hostname": "box",
                      "detach": True, "env": ("A=1",)}]
    _, calls = call(["run", "img"])
    assert calls[0]["command"] == () and calls[0]["image"] == "img"


def test_usage_errors_are_one_line_with_status_2_or_the_commands(
        capsys: pytest.CaptureFixture[str]) -> None:
    cases = [(["show", "--bogus"], 2, "tool show: unrecognized arguments: --bogus"),
             (["show", "--format", "xml"], 2, "tool show: argument --format: invalid choice"),
             (["show", "-n", "x"], 2, "tool show: argument -n/--last: invalid int value: 'x'"),
             (["show", "--human", "maybe"], 2, "tool show: argument --human: invalid boolean"),
             (["nope"], 2, "tool: no such command: 'nope'"),
             (["--bogus"], 2, "tool: unrecognized arguments: --bogus"),
             (["sub", "hello", "bad"], 2, "tool sub hello: bad name (see 'tool sub hello"),
             (["run"], 125, "tool run: the following arguments are required: IMAGE"),
             (["run", "--bogus", "img"], 125, "tool run: unrecognized arguments: --bogus")]
    for argv, status, start in cases:
        code, calls = call(argv)
        out, err = capsys.readouterr()
        ran = [c for c in calls if "root" not in c]  # hello asks for the object: root ran
        assert (code, out, ran) == (status, "", []), argv
        assert err.startswith(start) and err.count("\n") == 1, (argv, err)


def test_help_lists_options_and_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert call(["--help"])[0] == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: tool [OPTIONS] COMMAND [ARGS]...\n\n  The tool.\n")
    assert "  -f, --file TEXT          Files.\n" in out
    assert "  --version" in out and "  -h, --help" in out
    assert "  show  Show things.\n" in out and "  sub   Nested commands.\n" in out
    assert call(["show", "-h"]) == (0, [])
    out = capsys.readouterr().out
    assert out.startswith("Usage: tool show [OPTIONS] [ITEMS...]\n")
    assert "--format [yaml|json]" in out and "--pause/--no-pause" in out
    assert "  -n, --last INTEGER    Count.\n" in out
    # run's -h is its --hostname: only --help shows the help there
    assert call(["run", "--help"]) == (0, [])
    out = capsys.readouterr().out
    assert out.startswith("Usage: tool run [OPTIONS] IMAGE [COMMAND...]\n")
    assert "  --help               Show this message and exit.\n" in out
    assert "-h, --help" not in out


def test_group_without_command_shows_help_on_stderr_and_fails(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert call(["sub"]) == (2, [])
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("Usage: tool sub [OPTIONS] COMMAND [ARGS]...")
    assert "hello  Greet." in err


def test_version_echo_and_object_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    assert call(["--version"])[0] == 0
    out = capsys.readouterr().out
    assert out == "tool, version 1.2.3\n"
    assert call(["-p", "pr", "sub", "hello", "you"]) == (0, [{"root": "pr"}])
    assert capsys.readouterr() == ("hello you pr\n", "to stderr\n")


def test_lazy_commands_load_only_when_used(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    module = types.ModuleType("fw_lazy_probe")

    @fw.command("probe")
    @fw.argument("word")
    def probe(word: str) -> None:
        """Probe."""
        fw.echo(word.upper())

    module.probe = probe  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fw_lazy_probe", module)
    imported: list[str] = []
    real = importlib.import_module

    def spy(name: str) -> Any:
        imported.append(name)
        return real(name)

    monkeypatch.setattr(importlib, "import_module", spy)
    root = fw.Group("lazy", lazy={"probe": "fw_lazy_probe:probe", "other": "no_such_mod:x"})
    assert fw.run(root, ["probe", "hi"], "lazy") == 0
    assert capsys.readouterr().out == "HI\n"
    assert imported == ["fw_lazy_probe"]  # "other" was never imported


def test_required_raw_tail_and_abort(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    @fw.command("exec", interspersed=False)
    @fw.argument("container")
    @fw.argument("command", nargs=-1, required=True, type=fw.UNPROCESSED)
    def exec_(container: str, command: tuple[str, ...]) -> None:
        """Exec."""
        fw.echo(" ".join((container, *command)))

    assert fw.run(exec_, ["c", "ls", "-l"], "x exec") == 0
    assert capsys.readouterr().out == "c ls -l\n"
    assert fw.run(exec_, ["c"], "x exec") == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err

    @fw.command("prune")
    def prune() -> None:
        """Prune."""
        fw.echo("yes" if fw.confirm("Sure?") else "no")

    monkeypatch.setattr(sys, "stdin", io.StringIO("maybe\ny\n"))
    assert fw.run(prune, [], "x") == 0
    assert capsys.readouterr() == ("Sure? [y/N]: Sure? [y/N]: yes\n", "Error: invalid input\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert fw.run(prune, [], "x") == 0 and capsys.readouterr().out.endswith("no\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert fw.run(prune, [], "x") == 130
    assert capsys.readouterr().err == "Aborted.\n"


def test_file_errors_say_error_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    @fw.command("load")
    def load() -> None:
        """Load."""
        raise fw.FileError("x.tar", "No such file or directory")

    assert fw.run(load, [], "x") == 1
    assert capsys.readouterr().err == (
        "Error: Could not open file 'x.tar': No such file or directory\n")


def test_long_option_help_wraps_under_its_column(capsys: pytest.CaptureFixture[str]) -> None:
    @fw.command("wide")
    @fw.option("--level", choices=["debug", "info", "warning", "error"], default="info",
               show_default=True, help="How much the daemon says. " * 4)
    def wide(level: str) -> None:
        """Wide."""

    assert fw.run(wide, ["--help"], "x wide") == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("  --level [debug|info|warning|error]")
    body = lines[start + 1:-1]
    assert len(body) >= 2 and all(len(line) <= 80 for line in lines)
    assert all(line.startswith(" " * 34) and line[34] != " " for line in body)
    assert body[-1].endswith("[default: info]")
