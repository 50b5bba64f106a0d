"""Replays merge, extends and profile cases against the docker compose v2 binary.

The reference prints a normalised project; our stages return raw dicts. Each case projects
both onto the same small shape (port bindings, mount targets, variable maps, ...) for the
fields it is about, so the comparison checks the merge decisions, not the normalisation.
Skipped only when the reference binary is not installed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pycompose.compose.extends import apply_extends
from pycompose.compose.merge import expand_port_ranges, merge, split_port, strip_tags
from pycompose.compose.profiles import apply_profiles, list_profiles
from pycompose.compose.tags import Override, Reset

REFERENCE = os.environ.get(
    "PYCOMPOSE_REFERENCE_COMPOSE",
    "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/compose/docker-compose",
)

pytestmark = pytest.mark.skipif(
    not (os.path.exists(REFERENCE) or shutil.which("docker-compose")),
    reason="reference docker compose v2 binary not installed",
)


class _TagLoader(yaml.SafeLoader):
    """PyYAML loader producing our !reset / !override markers."""


_TagLoader.add_constructor("!reset", lambda loader, node: Reset())


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    assert isinstance(node, yaml.ScalarNode)
    return Override(loader.construct_scalar(node))


_TagLoader.add_constructor("!override", _override)


def load(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_TagLoader)
    assert isinstance(data, dict)
    return data


def reference(tmp: Path, *texts: str, args: tuple[str, ...] = ()) -> dict[str, Any]:
    files: list[str] = []
    for i, text in enumerate(texts):
        path = tmp / f"f{i}.yaml"
        path.write_text(text)
        files += ["-f", str(path)]
    binary = REFERENCE if os.path.exists(REFERENCE) else "docker-compose"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp)}
    proc = subprocess.run(
        [binary, *files, "--project-directory", str(tmp), *args, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    return result


# --------------------------------------------------------------------------- projections


def _ports(value: Any) -> list[tuple[Any, ...]]:
    out = []
    for p in expand_port_ranges(value or []):
        if isinstance(p, dict):
            ip, pub = p.get("host_ip"), p.get("published")
            target, proto = p["target"], p.get("protocol", "tcp")
        else:
            ip, pub, target, proto = split_port(str(p))
        out.append(
            (ip if ip not in ("", "0.0.0.0") else None, str(pub or "") or None, int(target), proto)
        )
    return out


def _targets(value: Any) -> list[str]:
    out = []
    for v in value or []:
        parts = str(v).split(":")
        out.append(str(v["target"]) if isinstance(v, dict) else parts[min(1, len(parts) - 1)])
    return out


def _env(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {e.partition("=")[0]: (e.partition("=")[2] if "=" in e else None) for e in value}
    if isinstance(value, dict):
        return {k: None if v is None else str(v) for k, v in value.items()}
    return {}


def _strings(value: Any) -> list[str]:
    return [
        str(v) for v in (value if isinstance(value, list) else [] if value is None else [value])
    ]


def _mounts(default_dir: str) -> Callable[[Any], list[tuple[str, str]]]:
    def project(value: Any) -> list[tuple[str, str]]:
        out = []
        for v in value or []:
            src = v["source"] if isinstance(v, dict) else v
            target = v.get("target") if isinstance(v, dict) else None
            out.append((src, target or f"{default_dir}/{src}"))
        return out

    return project


def _command(value: Any) -> Any:
    return shlex.split(value) if isinstance(value, str) else value


def _depends(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        value = {n: {} for n in value}
    return {
        n: (s.get("condition", "service_started"), s.get("required", True))
        for n, s in (value or {}).items()
    }


def _networks(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {n: [] for n in value}
    return {n: sorted((s or {}).get("aliases", [])) for n, s in (value or {}).items()}


def _hosts(value: Any) -> list[str]:
    if isinstance(value, dict):
        value = [f"{h}={ip}" for h, ips in value.items() for ip in _strings(ips)]
    return sorted(h.replace(":", "=", 1) if "=" not in h else h for h in value or [])


def _identity(value: Any) -> Any:
    return value


PROJECT: dict[str, Callable[[Any], Any]] = {
    "ports": _ports,
    "volumes": _targets,
    "devices": _targets,
    "environment": _env,
    "labels": _env,
    "sysctls": _env,
    "dns": _strings,
    "dns_search": _strings,
    "tmpfs": _strings,
    "cap_add": _strings,
    "profiles": _strings,
    "expose": _strings,
    "secrets": _mounts("/run/secrets"),
    "configs": _mounts(""),
    "command": _command,
    "entrypoint": _command,
    "depends_on": _depends,
    "networks": _networks,
    "extra_hosts": _hosts,
}


def same_fields(ours: dict[str, Any], theirs: dict[str, Any], fields: list[str]) -> None:
    for field in fields:
        project = PROJECT.get(field, _identity)
        assert project(ours.get(field)) == project(theirs.get(field)), field


# --------------------------------------------------------------------------- cases

BASE = """
services:
  web:
    image: busybox
    command: ["a", "b"]
    ports:
      ["8080:80", "127.0.0.1:9000:90/udp", {target: 100, published: "1000"}, 81, "7000-7001:70-71"]
    environment: [A=1, B=2, C]
    labels: {l1: a}
    sysctls: [a.b=1]
    volumes: ["./data:/data", "vol:/v:ro", {type: tmpfs, target: /t}]
    devices: ["/dev/null:/dev/a", "/dev/zero:/dev/c"]
    dns: 8.8.8.8
    dns_search: a.example
    tmpfs: ["/run:size=1m", /x]
    depends_on: [db]
    networks: {n1: {aliases: [a]}}
    extra_hosts: ["h1:1.1.1.1", "h3=3.3.3.3"]
    healthcheck: {test: ["CMD", "a"], interval: 5s, retries: 3}
    logging: {driver: json-file, options: {max-size: 1m}}
    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 10}
    secrets: [s1, {source: s2, target: /run/secrets/s2}]
    configs: [c1, c2]
    cap_add: [A, B]
    expose: [80, "81"]
    profiles: [a]
  db: {image: x, profiles: [a]}
networks: {n1: {}, n2: {}}
volumes: {vol: {}, vol2: {}}
secrets: {s1: {file: ./f0.yaml}, s2: {file: ./f0.yaml}}
configs: {c1: {file: ./f0.yaml}, c2: {file: ./f0.yaml}, c3: {file: ./f0.yaml}}
"""

OVERRIDE = """
services:
  web:
    image: null
    command: c
    ports: ["8080:80", "8081:80", "127.0.0.1:9000:90/udp", "1000:100", "80", "7001:71"]
    environment: {A: 3, D: 4, B: null}
    labels: [l2=b, l1=c]
    sysctls: {c.d: 2}
    volumes: ["./other:/data", {type: volume, source: vol2, target: /v}]
    devices: ["/dev/null:/dev/b", "/dev/random:/dev/c"]
    dns: [1.1.1.1, 8.8.8.8]
    dns_search: b.example
    tmpfs: "/run:size=2m"
    depends_on: {db: {condition: service_healthy}}
    networks: {n2: {aliases: [x]}, n1: null}
    extra_hosts: {h1: 1.1.1.1, h2: [2.2.2.2, 4.4.4.4]}
    healthcheck: {test: ["CMD", "b"], interval: 6s}
    logging: {options: {max-file: "2"}}
    ulimits: {nofile: 5}
    secrets: [{source: s1}, s2, {source: s1, target: /x}]
    configs: [{source: c1}, c3]
    cap_add: [B, C]
    expose: ["80", 82]
    profiles: [a, b]
"""

MERGE_FIELDS = [
    "image",
    "command",
    "ports",
    "environment",
    "labels",
    "sysctls",
    "volumes",
    "devices",
    "dns",
    "dns_search",
    "tmpfs",
    "depends_on",
    "networks",
    "extra_hosts",
    "healthcheck",
    "logging",
    "ulimits",
    "secrets",
    "configs",
    "cap_add",
    "expose",
    "profiles",
]


def test_two_file_merge_matches_reference(tmp_path: Path) -> None:
    theirs = reference(tmp_path, BASE, OVERRIDE, args=("--profile", "a"))["services"]["web"]
    ours = strip_tags(merge(load(BASE), load(OVERRIDE)))["services"]["web"]
    same_fields(ours, theirs, MERGE_FIELDS)


RESET = """
services:
  web:
    environment: !override {C: "3"}
    ports: !reset []
    command: !reset null
    labels: !reset {}
    volumes: !override ["/b:/b"]
    networks: !override {n2: {aliases: [b]}}
    dns: !reset
"""


def test_reset_and_override_match_reference(tmp_path: Path) -> None:
    theirs = reference(tmp_path, BASE, RESET, args=("--profile", "a"))["services"]["web"]
    ours = strip_tags(merge(load(BASE), load(RESET)))["services"]["web"]
    for field in ("ports", "labels", "dns"):
        assert field not in theirs
        assert field not in ours
    same_fields(ours, theirs, ["environment", "volumes", "networks", "image"])
    assert theirs.get("command") is None and ours.get("command") is None


EXTENDS = """
services:
  base:
    image: busybox
    depends_on: [db]
    links: [db]
    volumes_from: [db]
    ports: ["80:80"]
    environment: {A: 1}
    command: x
    dns: 1.1.1.1
  db: {image: x}
  mid: {extends: base, environment: [B=2], ports: ["80:80", "81:81"]}
  web: {extends: {service: mid}, command: [y], dns: [8.8.8.8], volumes: ["/a:/a"]}
"""


def test_extends_matches_reference(tmp_path: Path) -> None:
    theirs = reference(tmp_path, EXTENDS)["services"]

    def unexpected(path: str) -> dict[str, Any]:
        raise AssertionError(path)

    ours = apply_extends(load(EXTENDS), file=str(tmp_path / "f0.yaml"), load_file=unexpected)
    fields = ["image", "depends_on", "links", "volumes_from", "ports", "environment"]
    for name in ("mid", "web"):
        same_fields(ours["services"][name], theirs[name], [*fields, "command", "dns", "volumes"])


PROFILES = """
services:
  web: {image: x, depends_on: {db: {condition: service_started, required: false}}}
  db: {image: y, profiles: [debug]}
  tool: {image: z, profiles: [tools, debug]}
  plain: {image: p}
"""


@pytest.mark.parametrize("active", [(), ("debug",), ("tools",), ("*",)])
def test_profiles_match_reference(tmp_path: Path, active: tuple[str, ...]) -> None:
    args = tuple(a for p in active for a in ("--profile", p))
    theirs = sorted(reference(tmp_path, PROFILES, args=args)["services"])
    assert sorted(apply_profiles(load(PROFILES), set(active))["services"]) == theirs


def test_profile_listing_matches_reference(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(PROFILES)
    binary = REFERENCE if os.path.exists(REFERENCE) else "docker-compose"
    proc = subprocess.run(
        [binary, "-f", str(path), "config", "--profiles"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    assert proc.stdout.split() == list_profiles(load(PROFILES))
