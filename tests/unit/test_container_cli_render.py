"""The Go-template subset and docker-style rendering (tables, durations, sizes, ports,
``ps`` rows, ``inspect`` and ``top`` output)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pycompose.cli import render
from pycompose.cli.container_ps import (
    ContainerRow,
    ps_format,
    render_inspect,
    render_ps,
    render_top,
)
from pycompose.cli.gotemplate import Template, TemplateError, go_json, go_str

DATA: dict[str, Any] = {
    "Id": "abc", "Name": "/web",
    "State": {"Pid": 42, "Running": True, "ExitCode": 0, "Health": None},
    "Config": {"Cmd": ["sleep", "10"], "Labels": {"b": "2", "a": "1"}, "Env": ["A=1", "B=2"],
               "Tty": False, "Entrypoint": None},
    "NetworkSettings": {"IPAddress": "10.0.0.2",
                        "Networks": {"bridge": {"IPAddress": "10.0.0.2"},
                                     "back": {"IPAddress": "10.1.0.3"}}},
    "Mounts": [], "Ratio": 1.5, "Html": "<a&b>",
}


@pytest.mark.parametrize(("text", "expected"), [
    ("{{.State.Pid}}", "42"),
    ("{{.Name}} {{.Id}}", "/web abc"),
    ("{{json .Config.Cmd}}", '["sleep","10"]'),
    ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
    ("{{.NetworkSettings.IPAddress}}", "10.0.0.2"),
    ("{{.Config.Labels}}", "map[a:1 b:2]"),
    ("{{.Config.Cmd}}", "[sleep 10]"),
    ("{{.State.Running}} {{.Ratio}} {{.Config.Entrypoint}}", "true 1.5 <nil>"),
    ("{{.Nope}}", "<no value>"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{range $n, $c := .NetworkSettings.Networks}}{{$n}} {{$c.IPAddress}};{{end}}",
     "back 10.1.0.3;bridge 10.0.0.2;"),
    ("{{range .Mounts}}x{{else}}none{{end}}", "none"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.ExitCode 1}}one{{else if eq .State.ExitCode 0}}zero{{else}}?{{end}}",
     "zero"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{with .State.Health}}{{.Status}}{{else}}no health{{end}}", "no health"),
    ("{{index .Config.Labels \"a\"}} {{index .Config.Cmd 1}}", "1 10"),
    ("{{(index .NetworkSettings.Networks \"back\").IPAddress}}", "10.1.0.3"),
    ("{{len .Config.Env}} {{.Config.Cmd | len}}", "2 2"),
    ("{{join .Config.Cmd \" \"}}|{{upper .Name}}|{{lower \"AB\"}}|{{title \"ab cd\"}}",
     "sleep 10|/WEB|ab|Ab Cd"),
    ("{{split \"a,b\" \",\"}} {{truncate .Id 2}} [{{pad .Id 1 2}}]", "[a b] ab [ abc  ]"),
    ("{{printf \"%s-%d-%v-%q\" .Name .State.Pid .State.Running .Id}}", '/web-42-true-"abc"'),
    ("{{println .Id}}", "abc\n"),
    ("{{print .Id 1 2 \"x\"}}", "abc1 2x"),
    ("{{and .State.Running .Id}} {{or .Nope \"dflt\"}} {{not .State.Running}}",
     "abc dflt false"),
    ("{{if and (gt .State.Pid 40) (lt .State.Pid 50)}}in{{end}}", "in"),
    ("{{ne .Id \"x\"}} {{ge 2 2}} {{le 3 2}}", "true true false"),
    ("{{$p := .State.Pid}}{{$p}}", "42"),
    ("{{json .Html}}", '"<a&b>"'),
    ("a  {{- .Id -}}  b", "aabcb"),
    ("{{/* a comment */}}x", "x"),
    ("{{`raw`}} {{'a'}} {{0x10}} {{true}} {{nil}}", "raw 97 16 true <nil>"),
    ("{{range $i, $x := .Config.Env}}{{if $i}},{{end}}{{$x}}{{end}}", "A=1,B=2"),
    ("{{slice .Id 1}} {{slice .Config.Cmd 0 1}}", "bc [sleep]"),
])
def test_template(text: str, expected: str) -> None:
    assert Template(text).render(DATA) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("{{.State.Pid", "unclosed action"),
    ("{{if .Id}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{nosuch .Id}}", 'function "nosuch" not defined'),
    ("{{template \"x\"}}", "not supported"),
    ("{{$undefined}}", "undefined variable"),
    ("{{.Nope.Deeper}}", "nil pointer"),
    ("{{index .Config.Cmd 5}}", "index out of range"),
    ("{{.Id | }}", "bad syntax|missing"),
    ("{{printf \"%z\" 1}}", "not supported"),
    ("{{range .Id}}{{end}}", "can't iterate"),
    ("{{lt .Id 1}}", "incompatible types"),
])
def test_template_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        Template(text).render(DATA)


def test_go_values() -> None:
    assert go_str({"b": [1, None], "a": {"x": True}}) == "map[a:map[x:true] b:[1 <nil>]]"
    assert go_str(2.0) == "2" and go_str(0.25) == "0.25"
    assert go_json({"a": [1, "x"]}) == '{"a":[1,"x"]}'


def test_object_fields_and_methods() -> None:
    row = ContainerRow({"Id": "f" * 64, "Labels": {"com.x": "1"}, "Names": ["/a"]})
    assert Template('{{.ID}} {{.Label "com.x"}} {{.Names}}').render(row) == "f" * 12 + " 1 a"
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        Template("{{.Nope}}").render(row)


# -- rendering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert render.human_duration(seconds) == text


def test_sizes_quotes_ellipsis_table() -> None:
    assert [render.human_size(n) for n in (0, 999, 1000, 2_130_000, 4_260_000_000)] == [
        "0B", "999B", "1kB", "2.13MB", "4.26GB"]
    assert render.ellipsis("sleep 1000 and more text", 20) == "sleep 1000 and more…"
    assert render.ellipsis("short", 20) == "short"
    assert render.go_quote('a "b"\n\x01') == '"a \\"b\\"\\n\\x01"'
    assert render.tabwrite([["A", "LONGER HEADER", "Z"], ["xxxxxxxxxxxx", "y", "z"]]) == (
        "A              LONGER HEADER   Z\nxxxxxxxxxxxx   y               z")
    assert render.tabwrite([["UID", "PID"], ["root", "1"]], minwidth=20) == (
        "UID" + " " * 17 + "PID\nroot" + " " * 16 + "1")


@pytest.mark.parametrize(("ports", "text"), [
    ([{"PrivatePort": 9988, "Type": "tcp"}], "9988/tcp"),
    ([{"IP": "0.0.0.0", "PrivatePort": 9988, "PublicPort": 8899, "Type": "tcp"}],
     "0.0.0.0:8899->9988/tcp"),
    ([{"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}], "[::]:8080->80/tcp"),
    ([{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 81, "Type": "tcp"},
      {"PrivatePort": 82, "Type": "tcp"}, {"PrivatePort": 53, "Type": "udp"}],
     "53/udp, 80-82/tcp"),
    ([{"IP": "1.2.3.4", "PrivatePort": 6000, "PublicPort": 6000, "Type": "tcp"},
      {"IP": "1.2.3.4", "PrivatePort": 6001, "PublicPort": 6001, "Type": "tcp"}],
     "1.2.3.4:6000-6001->6000-6001/tcp"),
    ([{"PrivatePort": 5, "Type": "tcp"}, {"PrivatePort": 7, "Type": "tcp"}], "5/tcp, 7/tcp"),
])
def test_display_ports(ports: list[dict[str, Any]], text: str) -> None:
    assert render.display_ports(ports) == text


CONTAINER = {
    "Id": "89242cdd5c95252bfc0f77f3516d0f9bd3e314d95386d25b74820400448be01b",
    "Names": ["/xx", "/other/link"], "Image": "busybox@sha256:" + "a" * 64,
    "Command": "sleep 1000 with a long tail", "Created": 1000, "Ports": [],
    "Labels": {"z": "1", "a": "2"}, "State": "running", "Status": "Up 2 minutes",
    "NetworkSettings": {"Networks": {"none": {}}},
    "Mounts": [{"Name": "averyveryverylongvolumename", "Driver": "local"}],
}


def test_ps_default_table_and_variants() -> None:
    text = render_ps([CONTAINER], ps_format(None, False, False), trunc=True, now=1125)
    assert text.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         "
        "PORTS     NAMES",
        '89242cdd5c95   busybox   "sleep 1000 with a l…"   2 minutes ago   Up 2 minutes   '
        "          xx",
    ]
    assert render_ps([CONTAINER], ps_format(None, True, False), trunc=True) == "89242cdd5c95"
    full = render_ps([CONTAINER], "{{.ID}}|{{.Names}}|{{.Image}}|{{.Command}}", trunc=False)
    assert full == (f"{CONTAINER['Id']}|xx,other/link|busybox@sha256:{'a' * 64}|"
                    '"sleep 1000 with a long tail"')
    row = json.loads(render_ps([CONTAINER], "json", trunc=True, now=1125))
    assert row["Labels"] == "a=2,z=1" and row["LocalVolumes"] == "1"
    assert row["Mounts"] == "averyveryveryl…" and row["Networks"] == "none"
    assert list(row) == sorted(row)
    table = render_ps([CONTAINER], "table {{.Names}}\\t{{.Label \"a\"}}\\t{{.Size}}", trunc=True)
    assert table.splitlines() == ["NAMES     a         SIZE", "xx        2         0B"]
    assert ps_format("table", False, True).endswith("\t{{.Size}}")


def test_inspect_and_top_rendering() -> None:
    assert render_inspect([], None) == "[]"
    assert render_inspect([{"A": 1}], None) == '[\n    {\n        "A": 1\n    }\n]'
    assert render_inspect([{"A": 1}, {"A": 2}], "{{.A}}") == "1\n2"
    assert render_inspect([{"A": 1}], "json") == '{"A":1}'
    top = render_top({"Titles": ["PID", "CMD"], "Processes": [["1", "sleep 9"]]})
    assert top == "PID" + " " * 17 + "CMD\n1" + " " * 19 + "sleep 9"


def test_typed_container_view() -> None:
    """inspect --format sees docker's Go types: nil slices [], structs {...}, unknown fields
    are errors, omitted omitempty fields print their zero but stay out of JSON."""
    from pathlib import Path

    from pycompose.cli.container_typed import is_container, typed

    # ``docker inspect`` of a running container, by tests/fixtures/capture_docker_ref.py.
    ref = Path(__file__).resolve().parents[1] / "fixtures" / "ref" / "inspect.json"
    raw = json.loads(ref.read_text())[0]
    assert is_container(raw) and not is_container({"RepoTags": []})
    doc = typed(raw)

    def run(text: str) -> str:
        return Template(text).render(doc)

    assert run("{{.Config.Entrypoint}} {{json .Config.Entrypoint}}") == "[] null"
    assert run("{{.Config.Volumes}} {{.HostConfig.CapAdd}} {{.State.Health}}") == (
        "map[] [] <nil>")
    assert run("{{.Config.ExposedPorts}} {{.Config.StopTimeout}}") == "map[] <nil>"
    assert run("{{.State}}").startswith("{running true false false false false ")
    assert run("{{.State}}").endswith(" <nil>}")
    assert run("{{.HostConfig.LogConfig}}") == "{json-file map[]}"
    assert json.loads(run("{{json .Config}}")) == raw["Config"]
    assert "ExposedPorts" not in run("{{json .Config}}")
    assert run("{{.State.Pid}} {{.Config.Labels}}") == f"{raw['State']['Pid']} map[]"
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        run("{{.Config.Nope}}")
    assert render_inspect([raw], "{{.Name}}") == raw["Name"]


def test_typed_view_hides_fields_docker_types_lack() -> None:
    from pycompose.cli.container_typed import typed

    doc = typed({"State": {"Status": "running", "Extra": 1}, "HostConfig": {},
                 "NetworkSettings": {"Networks": {}, "PortSummary": []}})
    assert Template("{{.State.Extra}} {{.NetworkSettings.PortSummary}}").render(doc) == "1 []"
    assert "Extra" not in Template("{{json .State}}").render(doc)
    assert "PortSummary" not in Template("{{json .NetworkSettings}}").render(doc)
