"""Randomised differential test: normalise generated services and compare, live, with what
the reference docker compose v2 binary prints for the same file (skipped without it).

Each generated file combines a few of the shapes below (valid and invalid ones); both tools
must accept or reject it alike and, when accepted, print the same model. The generator is
seeded, so a failure names a reproducible case.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.common import docker_compose_binary
from pycompose.compose.errors import ComposeError
from pycompose.compose.normalize import normalize
from tests.unit.test_normalize import _as_compose_json, read_env_file

REFERENCE = docker_compose_binary()
ENVIRON = {"HOME": "/home/user", "PATH": "/usr/bin:/bin", "FOO": "bar"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REFERENCE is None, reason="docker compose binary not installed"),
]

SHAPES: dict[str, list[Any]] = {
    "ports": [["80"], ["8080:80"], ["127.0.0.1::80/udp"], ["80-82"], ["9000-9002:80"],
              [{"target": 80, "published": "8080", "app_protocol": "http"}],
              ["80", "80/udp", {"target": 80, "mode": "host"}], ["[::]:2:2"],
              ["80:80:80:80"], ["70000"], ["1-2:3-5"]],
    "volumes": [["./a:/a"], ["vol:/v:ro"], ["/x:/x:ro,z"], ["~/.ssh:/root/.ssh:ro"],
                [{"type": "bind", "source": "b", "target": "/b", "bind": {"propagation": "slave"}}],
                [{"type": "tmpfs", "target": "/t", "tmpfs": {"size": "64m", "mode": 1777}}],
                ["/a:/a", "./b:/a"], ["vol:/b:ro:x"]],
    "environment": [["A=1", "FOO", "NOPE"], {"A": 1, "B": None, "X": 1.5, "Y": True}],
    "command": ["a 'b c' \"d\"", ["x", "y"], "", [], "echo a && b", "echo 'x"],
    "healthcheck": [{"test": "true"}, {"test": ["CMD", "x"], "interval": "1m", "retries": 2},
                    {"disable": True}, {"start_period": "90s", "start_interval": "250ms"},
                    {"timeout": "10"}],
    "depends_on": [["db"], {"db": {"condition": "service_healthy"}},
                   {"db": {"condition": "service_started", "required": False, "restart": True}}],
    "deploy": [{"replicas": 2}, {"resources": {"limits": {"cpus": "0.25", "memory": "256M"}}},
               {"restart_policy": {"condition": "any", "delay": "2s"}}, {"mode": "global"}],
    "ulimits": [{"nofile": 1024}, {"nofile": {"soft": 1, "hard": 2}, "core": 0}],
    "extra_hosts": [["a:1.2.3.4"], {"b": "::1"}, ["c=10.0.0.1", "c=10.0.0.2"]],
    "labels": [["a=b", "c"], {"x": 1, "y": None}],
    "networks": [["front"], {"front": {"aliases": ["f"]}}, {"front": None, "back": {}}],
    "build": [".", {"context": "./ctx", "args": ["A", "FOO", "B=2"]}, {"target": "dev"}],
    "mem_limit": ["512m", 1048576, "1x"],
    "cpus": [0.5, "1.5"],
    "stop_grace_period": ["30s", "2h", "10"],
    "secrets": [["s"], [{"source": "s", "target": "t", "mode": 288}]],
    "configs": [["c"], [{"source": "c", "target": "/etc/c"}]],
    "volumes_from": [["db"], ["db:ro", "container:xyz"]],
    "pid": ["host", "service:db"],
    "devices": [["/dev/fuse"], ["/dev/a:/dev/b:r"]],
    "gpus": ["all"],
    "pull_policy": ["if_not_present", "build"],
    "scale": [1, 3],
    "links": [["db:database"]],
    "tmpfs": ["/run", ["/run", "/run"]],
}
NETWORKS = [{}, None, {"external": True}, {"name": "custom"}, {"external": {"name": "old"}},
            {"driver_opts": {"mtu": 1400}, "labels": ["a=b"]}, {"enable_ipv6": False}]
VOLUMES = [{}, None, {"external": True}, {"name": "n"}, {"labels": {"x": 1}},
           {"driver": "local", "driver_opts": {"o": "bind", "device": "./d"}}]


def _project(rng: random.Random) -> dict[str, Any]:
    service: dict[str, Any] = {"image": "x"}
    for key in rng.sample(sorted(SHAPES), rng.randint(3, 9)):
        service[key] = rng.choice(SHAPES[key])
    return {
        "services": {"app": service, "db": {"image": "db"}},
        "networks": {"front": rng.choice(NETWORKS), "back": rng.choice(NETWORKS),
                     "unused": rng.choice(NETWORKS)},
        "volumes": {"vol": rng.choice(VOLUMES), "unused": rng.choice(VOLUMES)},
        "secrets": {"s": {"file": "./s.txt"}, "unused": {"environment": "FOO"}},
        "configs": {"c": {"content": "hi"}},
    }


def _reference(case_dir: Path) -> dict[str, Any] | None:
    assert REFERENCE is not None
    done = subprocess.run([REFERENCE, "-p", "pc", "config", "--format", "json"], cwd=case_dir,
                          env=ENVIRON, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.mark.parametrize("seed", range(40))
def test_random_project_like_docker_compose(seed: int, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", ENVIRON["HOME"])
    project = _project(random.Random(seed))
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(project))
    expected = _reference(tmp_path)
    try:
        ours: dict[str, Any] | None = _as_compose_json(normalize(
            project, project_name="pc", project_dir=str(tmp_path), environ=ENVIRON,
            read_env_file=read_env_file))
    except ComposeError:
        ours = None
    assert (ours is None) == (expected is None), yaml.safe_dump(project)
    assert ours == expected
