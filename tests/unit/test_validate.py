"""Unit tests for compose schema validation (pycompose.compose.validate, .suggest)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

import pytest
import yaml

from pycompose.compose import validate as v
from pycompose.compose.errors import ComposeError, ComposeErrors, Path
from pycompose.compose.suggest import closest, did_you_mean

# Every key compose accepts, in every place it is accepted. docker compose v2.40.3 accepts
# this file as it stands (the reference test runs it through the binary).
EVERY_KEY = """\
version: "3.9"
name: everykey
x-common: &common {restart: unless-stopped}
include:
  - inc/compose.yaml
  - path: [inc2/compose.yaml]
    env_file: a.env
    project_directory: inc2
services:
  web:
    <<: *common
    annotations: {com.example.a: "1"}
    attach: false
    blkio_config:
      weight: 300
      weight_device: [{path: /dev/sda, weight: 400}]
      device_read_bps: [{path: /dev/sda, rate: "12mb"}]
      device_read_iops: [{path: /dev/sda, rate: 120}]
      device_write_bps: [{path: /dev/sda, rate: 1024k}]
      device_write_iops: [{path: /dev/sda, rate: 30}]
    build:
      context: .
      dockerfile: Dockerfile
      args: {A: "1", B: 2}
      ssh: [default]
      cache_from: [type=local,src=/tmp/c]
      cache_to: [type=local,dest=/tmp/c]
      additional_contexts: {base: "docker-image://alpine"}
      secrets: [s1]
      tags: ["repo/web:extra"]
      platforms: [linux/amd64]
      target: prod
      network: host
      shm_size: 128m
      extra_hosts: ["somehost=162.242.195.82"]
      labels: [a=b]
      isolation: default
      privileged: true
      ulimits: {nofile: {soft: 1024, hard: 2048}}
      entitlements: [network.host]
      no_cache: true
      pull: true
      provenance: true
      sbom: true
      x-build-ext: 1
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    cgroup: private
    cgroup_parent: m-executor-abcd
    command: ["sh", "-c", "echo hi"]
    configs: [c1, {source: c1, target: /etc/c1, uid: "103", gid: "103", mode: 0440}]
    container_name: my-web
    cpu_count: 2
    cpu_percent: 50
    cpu_shares: 73
    cpu_period: 100000
    cpu_quota: "50000"
    cpu_rt_period: 11000
    cpu_rt_runtime: 950000
    cpus: "0.5"
    cpuset: 0-1
    credential_spec: {config: my_credential_spec}
    depends_on:
      db: {condition: service_healthy, restart: true, required: false}
      worker: {condition: service_started}
    deploy:
      mode: replicated
      endpoint_mode: vip
      replicas: 2
      labels: {a: b}
      resources:
        limits: {cpus: "0.5", memory: 1g, pids: 10}
        reservations:
          cpus: 0.25
          memory: 20M
          generic_resources: [{discrete_resource_spec: {kind: gpu, value: 2}}]
          devices: [{capabilities: [gpu], driver: nvidia, count: 1, options: {a: b}}]
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 120s}
      update_config: {parallelism: 2, delay: 10s, failure_action: pause, monitor: 0s,
                      max_failure_ratio: 0, order: start-first}
      rollback_config: {parallelism: 1, order: stop-first}
      placement:
        constraints: [node.role==manager]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 1
    develop:
      watch:
        - {path: ./src, action: sync, target: /app/src, ignore: [node_modules/], include: ["*.py"]}
        - {path: ./pkg, action: sync+exec, target: /app, exec: {command: [echo, hi]}}
        - {path: package.json, action: rebuild}
    device_cgroup_rules: ["c 1:3 mr"]
    devices: ["/dev/null:/dev/xnull:rwm", {source: /dev/zero, target: /dev/xzero, permissions: r}]
    dns: 8.8.8.8
    dns_opt: [use-vc]
    dns_search: [example.com]
    domainname: foo.com
    entrypoint: /code/entrypoint.sh
    env_file: [a.env, {path: ./missing.env, required: false}]
    environment: {RACK_ENV: development, SHOW: "true", N: 1, EMPTY: null, B: false}
    expose: ["3000", 8000, "8080-8085/tcp"]
    external_links: [redis_1]
    extra_hosts: {somehost: "162.242.195.82", other: ["10.0.0.1", "::1"]}
    gpus: [{driver: nvidia, count: 1}]
    group_add: [mail, 42]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 1m30s
      timeout: 10s
      retries: 3
      start_period: 40s
      start_interval: 5s
    hostname: web
    image: example/web:1.0
    init: true
    ipc: shareable
    isolation: default
    labels: [com.example.description=Accounting]
    label_file: [labels.txt]
    links: [db:database]
    logging: {driver: json-file, options: {max-size: 200k, max-file: "10", mode: null}}
    mac_address: 02:42:ac:11:65:43
    mem_limit: 1g
    mem_reservation: 512m
    mem_swappiness: 60
    memswap_limit: 2g
    models: [llm]
    networks:
      front:
        aliases: [alias1]
        ipv4_address: 172.16.238.10
        ipv6_address: 2001:3984:3989::10
        link_local_ips: [57.123.22.11]
        priority: 1000
        mac_address: 02:42:ac:11:65:44
        driver_opts: {com.docker.network.bridge.host_binding_ipv4: "127.0.0.1"}
        gw_priority: 1
        interface_name: eth7
      back:
    oom_kill_disable: true
    oom_score_adj: 500
    pid: host
    pids_limit: 10
    platform: linux/amd64
    ports:
      - 3000
      - "3001-3005"
      - 8080:80
      - "127.0.0.1:8001:8001/udp"
      - {target: 80, published: "8088", host_ip: 127.0.0.1, protocol: tcp, mode: host,
         name: web, app_protocol: http}
    post_start:
      - {command: [echo, started], user: root, privileged: true, working_dir: /,
         environment: [A=1]}
    pre_stop: [{command: echo stopping}]
    privileged: false
    profiles: [frontend, debug]
    pull_policy: missing
    read_only: true
    runtime: runc
    scale: 1
    secrets: [s1, {source: s2, target: /run/secrets/two, uid: "0", gid: "0", mode: 0400}]
    security_opt: [label=user:USER]
    shm_size: "64m"
    stdin_open: true
    stop_grace_period: 1m30s
    stop_signal: SIGUSR1
    storage_opt: {size: 20G}
    sysctls: {net.core.somaxconn: 1024, net.ipv4.tcp_syncookies: 0}
    tmpfs: [/run, /tmp:size=64m]
    tty: true
    ulimits: {nproc: 65535, nofile: {soft: 20000, hard: 40000}}
    use_api_socket: true
    user: "1000:1000"
    userns_mode: host
    uts: host
    volumes:
      - type: volume
        source: data
        target: /data
        read_only: false
        volume: {nocopy: true, subpath: sub, labels: {a: b}}
      - type: bind
        source: ./static
        target: /opt/app/static
        consistency: cached
        bind: {propagation: rshared, create_host_path: true, selinux: z, recursive: enabled}
      - {type: tmpfs, target: /cache, tmpfs: {size: 1000, mode: 0755}}
      - {type: image, source: alpine, target: /img, image: {subpath: etc}}
      - ./cfg:/etc/cfg:ro
      - logs:/var/log
    volumes_from: ["worker:ro"]
    working_dir: /code
    x-service-ext: {anything: [1, 2]}
  db:
    image: postgres
    pull_policy: refresh
    pull_refresh_after: 1h
    healthcheck: {test: "pg_isready", disable: false}
    networks: [back]
  worker:
    extends: {service: db}
  sidecar:
    image: busybox
    network_mode: "service:db"
  inline:
    build: {context: ., dockerfile_inline: "FROM busybox\\nRUN true\\n"}
  provided:
    provider: {type: awesomecloud, options: {type: mysql, tags: [a, b], n: 1}}
networks:
  front:
    driver: bridge
    driver_opts: {com.docker.network.bridge.name: br-x, mtu: 1500}
    ipam:
      driver: default
      config:
        - subnet: 172.16.238.0/24
          ip_range: 172.16.238.0/25
          gateway: 172.16.238.1
          aux_addresses: {host1: 172.16.238.5}
        - subnet: "2001:3984:3989::/64"
      options: {foo: bar}
    enable_ipv6: true
    enable_ipv4: true
    attachable: true
    internal: false
    labels: [a=b]
    x-n: 1
  back:
  outside: {external: true, name: actual-outside}
volumes:
  data: {driver: local, driver_opts: {type: none, o: bind, device: /tmp}, labels: {a: b},
         name: my-data}
  logs:
  ext: {external: true}
secrets:
  s1: {file: ./secret.txt, labels: {a: b}, template_driver: golang}
  s2: {environment: HOME}
  s3: {external: true, name: ext-secret}
  s4: {file: ./secret.txt, driver: vault, driver_opts: {path: x, n: 1}}
configs:
  c1: {file: ./config.txt, labels: [a=b], template_driver: golang, name: my-c1}
  c2: {content: "hello $${X}"}
  c3: {environment: HOME}
  c4: {external: true}
models:
  llm: {model: ai/smollm2, name: my-llm, context_size: 1024,
        runtime_flags: ["--no-prefill-assistant"]}
x-top: [1, 2]
"""

# Written as interpolation leaves them: numbers, sizes and booleans arrive as strings.
INTERPOLATED = """\
services:
  web:
    image: "nginx:${TAG:-latest}"
    cpus: "0.5"
    cpu_count: "2"
    cpu_percent: "50"
    oom_score_adj: "-500"
    mem_limit: 1g
    memswap_limit: "2g"
    shm_size: "64m"
    scale: "2"
    init: "true"
    privileged: "false"
    read_only: "true"
    tty: "true"
    stdin_open: "false"
    pids_limit: "100"
    ports: ["8080:80", 9090, {target: "80", published: "8081"}]
    ulimits: {nofile: "1024", nproc: {soft: "10", hard: "20"}}
    healthcheck: {retries: "3", disable: "false"}
    deploy: {replicas: "2", resources: {limits: {cpus: "0.5", pids: "100", memory: 1g}}}
    volumes: [{type: tmpfs, target: /t, tmpfs: {size: "10m", mode: 0o755}}]
"""


def _line_map(text: str) -> dict[Path, int]:
    """Path -> 1-based line of each key and list item, as the loader's YAML reader gives."""
    lines: dict[Path, int] = {(): 1}

    def walk(node: yaml.Node, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, key.value)
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _errors(text: str, lines: dict[Path, int] | None = None) -> list[ComposeError]:
    data = yaml.safe_load(text)
    with pytest.raises(ComposeErrors) as caught:
        v.validate(data, file="compose.yaml", lines=_line_map(text) if lines is None else lines)
    return caught.value.errors


def _messages(text: str) -> list[str]:
    return [str(e) for e in _errors(text)]


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the generated validator out of the user's ~/.cache during these tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        mp.setattr(v, "_fast", None)
        yield


# --- valid documents ------------------------------------------------------------------------


def test_every_key_is_accepted_by_both_validators() -> None:
    data = yaml.safe_load(EVERY_KEY)
    v.validate(data, file="compose.yaml", lines={})
    assert v.fast_check(data) is None
    assert v.collect_errors(data, file="compose.yaml", lines={}) == []


def _props(definition: str) -> set[str]:
    return set(v.load_schema()["definitions"][definition]["properties"])


def test_every_key_document_covers_every_key_of_the_schema() -> None:
    data = yaml.safe_load(EVERY_KEY)
    used = {key for service in data["services"].values() for key in service}
    assert _props("service") - used == set()
    for section, definition in [
        ("networks", "network"),
        ("volumes", "volume"),
        ("secrets", "secret"),
        ("configs", "config"),
        ("models", "model"),
    ]:
        used = {key for item in data[section].values() if item for key in item}
        assert _props(definition) - used == set(), section
    builds = [s["build"] for s in data["services"].values() if isinstance(s.get("build"), dict)]
    build_props = set(v.load_schema()["definitions"]["build"]["anyOf"][1]["properties"])
    assert build_props - {key for build in builds for key in build} == set()
    assert set(v.load_schema()["properties"]) - set(data) == set()


def test_values_produced_by_interpolation_are_accepted() -> None:
    data = yaml.safe_load(INTERPOLATED)
    v.validate(data, file="compose.yaml", lines={})


@pytest.mark.parametrize(
    "text",
    [
        "services: {}\n",
        "services:\n  a: {image: x}\nnetworks:\n  n:\nvolumes:\n  v:\n",
        "x-anything: {deep: [1, {x: 2}]}\nservices:\n  a: {image: x, x-meta: 1}\n",
        "services:\n  a:\n    command:\n    entrypoint: [sh]\n",
        "services:\n  a:\n    networks: {front: null, back: {aliases: [b]}}\n",
        "services:\n  a:\n    depends_on: [b]\n  b: {image: x}\n",
        "services:\n  a:\n    gpus: all\n    deploy:\n",
        "services:\n  a:\n    cpu_count: 1.0\n",
    ],
)
def test_valid_variants(text: str) -> None:
    data = yaml.safe_load(text)
    v.validate(data, file="compose.yaml", lines=_line_map(text))


# --- invalid documents: messages, lines and paths ------------------------------------------


def test_unknown_key_names_the_line_and_suggests_the_key() -> None:
    text = "services:\n  web:\n    image: x\n    imgae: y\n"
    assert _messages(text) == [
        'compose.yaml:4 services.web: unknown key "imgae" (did you mean "image"?)'
    ]


def test_unknown_top_level_key() -> None:
    text = "version: '3'\nservics:\n  web: {image: x}\n"
    assert _messages(text) == ['compose.yaml:2: unknown key "servics" (did you mean "services"?)']


def test_unknown_key_without_close_match_has_no_suggestion() -> None:
    text = "services:\n  web:\n    zzzzqqq: 1\n"
    assert _messages(text) == ['compose.yaml:3 services.web: unknown key "zzzzqqq"']


def test_misspelt_extension_key_gets_a_hint() -> None:
    text = "services:\n  web:\n    x_meta: 1\n"
    assert _messages(text) == [
        'compose.yaml:3 services.web: unknown key "x_meta" (extension keys must start with "x-")'
    ]


def test_wrong_type_in_a_list_item() -> None:
    text = "services:\n  web:\n    image: x\n    ports:\n      - 8080:80\n      - [80]\n"
    assert _messages(text) == [
        "compose.yaml:6 services.web.ports[1]: must be a string, number or mapping, not a list"
    ]


@pytest.mark.parametrize(
    ("snippet", "path", "message"),
    [
        ("cpus: [1]", "services.web.cpus", "must be a string or number, not a list"),
        ("environment: x=1", "services.web.environment", "must be a list or mapping, not a string"),
        (
            "use_api_socket: 'true'",
            "services.web.use_api_socket",
            'must be a boolean, not a string ("true")',
        ),
        (
            "cap_add: NET_ADMIN",
            "services.web.cap_add",
            'must be a list, not a string ("NET_ADMIN")',
        ),
        (
            "command: {a: 1}",
            "services.web.command",
            "must be a string, list or null, not a mapping",
        ),
        ("cpu_count: -1", "services.web.cpu_count", "must be at least 0, not -1"),
        ("cpu_percent: 101", "services.web.cpu_percent", "must be at most 100, not 101"),
        ("env_file: {path: a}", "services.web.env_file", "must be a string or list, not a mapping"),
        (
            "ulimits: {nofile: {soft: 1}}",
            "services.web.ulimits.nofile",
            'missing required key "hard"',
        ),
        (
            "labels: {a: [1]}",
            "services.web.labels.a",
            "must be a string, number, boolean or null, not a list",
        ),
        (
            "container_name: a",
            "services.web.container_name",
            '"a" is not valid here: expected at least two characters',
        ),
        (
            "pull_policy: sometimes",
            "services.web.pull_policy",
            '"sometimes" is not valid here: expected always, never, missing',
        ),
        (
            "volumes: [{source: a, target: /b}]",
            "services.web.volumes[0]",
            'missing required key "type"',
        ),
        ("gpus: some", "services.web.gpus", 'must be one of "all", not "some"'),
    ],
)
def test_wrong_values(snippet: str, path: str, message: str) -> None:
    text = f"services:\n  web:\n    image: x\n    {snippet}\n"
    [error] = _errors(text)
    assert error.line == 4
    assert str(error).startswith(f"compose.yaml:4 {path}: ")
    assert message in error.message


def test_bad_enum_value_suggests_the_closest() -> None:
    text = "services:\n  web:\n    cgroup: hots\n"
    assert _messages(text) == [
        'compose.yaml:3 services.web.cgroup: must be one of "host", "private", not "hots"'
        ' (did you mean "host"?)'
    ]


def test_long_form_depends_on_condition_enum_is_reported_not_the_list_form() -> None:
    text = "services:\n  web:\n    depends_on:\n      db: {condition: service_healty}\n  db: {}\n"
    [error] = _errors(text)
    assert error.path == ("services", "web", "depends_on", "db", "condition")
    assert 'did you mean "service_healthy"' in error.message


def test_missing_condition_in_long_form_depends_on() -> None:
    text = "services:\n  web:\n    depends_on:\n      db: {restart: true}\n"
    assert _messages(text) == [
        'compose.yaml:4 services.web.depends_on.db: missing required key "condition"'
    ]


def test_device_reservation_needs_capabilities_or_driver() -> None:
    text = (
        "services:\n  web:\n    deploy:\n      resources:\n        reservations:\n"
        "          devices:\n            - count: 1\n"
    )
    [error] = _errors(text)
    assert error.message == 'missing required key: needs "capabilities" or "driver"'
    assert error.line == 7


def test_invalid_service_name() -> None:
    text = "services:\n  web: {}\n  we b: {image: x}\n"
    assert _messages(text) == [
        'compose.yaml:3 services: invalid name "we b": use only letters, digits, ".", "_" and "-"'
    ]


def test_all_errors_are_reported_together_sorted_by_line() -> None:
    text = """\
services:
  web:
    imgae: nginx
    ports:
      - {target: 80, publishd: 8080}
    cpus: [1]
  db:
    restart: [always]
    healthcheck:
      interval: 10
volumes:
  data: {driverr: local}
secrets:
  s: {file: ./s, mode: 1}
  t: {fil: ./t}
"""
    assert _messages(text) == [
        'compose.yaml:3 services.web: unknown key "imgae" (did you mean "image"?)',
        'compose.yaml:5 services.web.ports[0]: unknown key "publishd" (did you mean "published"?)',
        "compose.yaml:6 services.web.cpus: must be a string or number, not a list",
        "compose.yaml:8 services.db.restart: must be a string, not a list",
        "compose.yaml:10 services.db.healthcheck.interval: must be a string, not an integer (10)",
        'compose.yaml:12 volumes.data: unknown key "driverr" (did you mean "driver"?)',
        'compose.yaml:14 secrets.s: unknown key "mode"',
        'compose.yaml:15 secrets.t: unknown key "fil" (did you mean "file"?)',
    ]


def test_line_falls_back_to_the_nearest_ancestor() -> None:
    text = "services:\n  web:\n    ports: [[80]]\n"
    lines: dict[Path, int] = {("services",): 1, ("services", "web"): 2}
    [error] = _errors(text, lines)
    assert (error.line, error.path) == (2, ("services", "web", "ports", 0))


def test_no_line_when_nothing_is_known() -> None:
    [error] = _errors("services:\n  web: {cpus: []}\n", {})
    assert error.line is None
    assert str(error) == "compose.yaml services.web.cpus: must be a string or number, not a list"


def test_non_mapping_document_is_an_error() -> None:
    assert v.collect_errors([], file="f", lines={})[0].message == "must be a mapping, not a list"  # type: ignore[arg-type]


def test_non_string_keys_are_reported_not_crashed_on() -> None:
    data: dict[Any, Any] = {"services": {"web": {"environment": {1: "a"}, "cpus": []}}}
    with pytest.raises(ComposeErrors) as caught:
        v.validate(data, file="compose.yaml", lines={})
    messages = sorted(str(e) for e in caught.value.errors)
    assert messages == [
        "compose.yaml services.web.cpus: must be a string or number, not a list",
        "compose.yaml services.web.environment: key 1 must be a string (quote it)",
    ]


def test_a_rejection_is_never_lost_when_the_validators_disagree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def reject(data: Any) -> None:
        raise ValueError("data.services must be object")

    monkeypatch.setattr(v, "_fast", reject)
    with pytest.raises(ComposeErrors) as caught:
        v.validate({"services": {}}, file="compose.yaml", lines={})
    assert str(caught.value) == (
        "compose.yaml: rejected by the compose schema: data.services must be object"
    )


# --- fast and thorough validators agree -----------------------------------------------------

_WRONG_VALUES: list[Any] = [{"zz": [1]}, [[1]], 1.5, True, None, "text", -1, [{"zz": 1}]]


def _mutations() -> Iterator[tuple[str, dict[str, Any]]]:
    """One small document per (service key, value of some other shape)."""
    for key in sorted(_props("service")):
        for value in _WRONG_VALUES:
            yield f"{key}={value!r}", {"services": {"web": {key: value}}}
    for section in ("networks", "volumes", "secrets", "configs", "models"):
        for value in _WRONG_VALUES:
            yield f"{section}={value!r}", {"services": {}, section: {"n": value}}


def test_fast_and_thorough_validators_agree_on_many_documents() -> None:
    checked = rejected = 0
    for label, data in _mutations():
        fast = v.fast_check(data)
        full = v.collect_errors(data, file="f", lines={})
        assert (fast is None) == (full == []), (label, fast, full)
        checked += 1
        rejected += fast is not None
    # Most of these are wrong, some happen to be right: both kinds must be covered.
    assert checked > 700
    assert 0 < rejected < checked


# --- the on-disk cache of the generated validator ------------------------------------------


def _cache_files(directory: FsPath) -> list[FsPath]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("compose-spec-"))


def test_cache_is_created_then_reused(tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch) -> None:
    check = v.load_fast_validator(str(tmp_path))
    files = _cache_files(tmp_path)
    assert [p.suffix for p in files] == [".code", ".py"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in files)
    assert list(tmp_path.glob(".tmp-*")) == []

    def no_generation(schema_bytes: bytes) -> str:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(v, "_generate_source", no_generation)
    again = v.load_fast_validator(str(tmp_path))
    doc = yaml.safe_load(EVERY_KEY)
    assert check(doc) is doc and again(doc) is doc
    with pytest.raises(ValueError):
        again({"services": {"web": {"imgae": "x"}}})


def test_generated_source_alone_rebuilds_the_code_file(tmp_path: FsPath) -> None:
    v.load_fast_validator(str(tmp_path))
    code_file = next(p for p in _cache_files(tmp_path) if p.suffix == ".code")
    code_file.unlink()
    v.load_fast_validator(str(tmp_path))
    assert code_file.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
@pytest.mark.parametrize("which", [".code", ".py", "both"])
def test_damaged_cache_files_are_regenerated(tmp_path: FsPath, damage: str, which: str) -> None:
    v.load_fast_validator(str(tmp_path))
    before = {p.name: p.read_bytes() for p in _cache_files(tmp_path)}
    for path in _cache_files(tmp_path):
        if which not in ("both", path.suffix):
            continue
        blob = path.read_bytes()
        if damage == "truncate":
            path.write_bytes(blob[: len(blob) // 2])
        elif damage == "garbage":
            path.write_bytes(os.urandom(256))
        else:
            path.write_bytes(blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:]))
    check = v.load_fast_validator(str(tmp_path))
    with pytest.raises(ValueError):
        check({"services": {"web": {"cpus": []}}})
    assert check({"services": {"web": {"cpus": "1"}}}) is not None
    if which == ".py":
        # A sound code file is used without reading the source; the source is
        # checked and rebuilt when the code file has to be rebuilt from it.
        next(p for p in _cache_files(tmp_path) if p.suffix == ".code").unlink()
        v.load_fast_validator(str(tmp_path))
    after = {p.name: p.read_bytes() for p in _cache_files(tmp_path)}
    assert after == before


def test_unwritable_cache_dir_falls_back_to_memory(tmp_path: FsPath) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache dir should be")
    check = v.load_fast_validator(str(blocker / "pycompose"))
    with pytest.raises(ValueError):
        check({"services": {"web": {"imgae": "x"}}})
    assert check({"services": {}}) is not None


def test_no_cache_dir_compiles_in_memory() -> None:
    check = v.load_fast_validator(None)
    with pytest.raises(ValueError):
        check({"volumes": []})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_cache_files_of_another_user_are_not_executed(tmp_path: FsPath) -> None:
    v.load_fast_validator(str(tmp_path))
    for path in _cache_files(tmp_path):
        path.write_bytes(path.read_bytes().replace(b"must be", b"MUST BE"))
        os.chown(path, 4321, 4321)
    check = v.load_fast_validator(str(tmp_path))
    with pytest.raises(ValueError) as caught:
        check({"volumes": []})
    assert "MUST BE" not in str(caught.value)


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: FsPath) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert v.cache_dir() == str(tmp_path / "pycompose")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert v.cache_dir() == str(tmp_path / "home" / ".cache" / "pycompose")


def test_generated_module_does_not_need_fastjsonschema_at_run_time(tmp_path: FsPath) -> None:
    v.load_fast_validator(str(tmp_path))
    source = next(p for p in _cache_files(tmp_path) if p.suffix == ".py").read_text()
    assert "import fastjsonschema" not in source and "from fastjsonschema" not in source


def test_schema_file_is_valid_draft7() -> None:
    from jsonschema import Draft7Validator

    with open(v.SCHEMA_PATH, encoding="utf-8") as fh:
        Draft7Validator.check_schema(json.load(fh))


# --- did you mean ---------------------------------------------------------------------------


def test_closest() -> None:
    keys = ["image", "ports", "volumes", "volumes_from", "environment"]
    assert closest("imgae", keys) == "image"
    assert closest("Image", keys) == "image"
    assert closest("VOLUMES", keys) == "volumes"
    assert closest("enviroment", keys) == "environment"
    assert closest("zzz", keys) is None
    assert closest("image", ["image"]) is None
    assert did_you_mean("port", keys) == ' (did you mean "ports"?)'
    assert did_you_mean("qqq", keys) == ""
