"""Invalid values found while normalising: each is one that docker compose v2.40 ``config``
also rejects; we report all of them at once, each with its dotted path."""

from __future__ import annotations

from typing import Any

import pytest

from pycompose.compose.errors import ComposeErrors, format_path
from pycompose.compose.normalize import normalize

ENVIRON = {"HOME": "/home/user"}


def _no_env_files(path: str, lookup: Any) -> dict[str, str]:
    raise AssertionError(f"unexpected env file read: {path}")


def _errors(service: dict[str, Any], **top: Any) -> dict[str, str]:
    data = {"services": {"a": {"image": "x", **service}}, **top}
    with pytest.raises(ComposeErrors) as info:
        normalize(data, project_name="p", project_dir="/p", environ=ENVIRON,
                  read_env_file=_no_env_files)
    return {format_path(err.path): err.message for err in info.value.errors}


@pytest.mark.parametrize(
    ("service", "path", "message"),
    [
        ({"ports": ["80:80:80:80"]}, "services.a.ports[0]", "invalid IP address: 80:80"),
        ({"ports": ["70000"]}, "services.a.ports[0]", "invalid container port"),
        ({"ports": ["999999:80"]}, "services.a.ports[0]", "invalid host port"),
        ({"ports": ["a:80"]}, "services.a.ports[0]", "invalid host port"),
        ({"ports": ["80/xyz"]}, "services.a.ports[0]", "invalid protocol"),
        ({"ports": ["81-80"]}, "services.a.ports[0]", "invalid container port"),
        ({"ports": ["8000-8002:80-81"]}, "services.a.ports[0]", "different lengths"),
        ({"ports": ["0"]}, "services.a.ports[0]", "missing a target port"),
        ({"ports": ["80:"]}, "services.a.ports[0]", "invalid protocol"),
        ({"ports": ["[::1]:80"]}, "services.a.ports[0]", "missing ']'"),
        ({"ports": [{"target": 80, "host_ip": "x"}]}, "services.a.ports[0]",
         "invalid IP address: x"),
        ({"stop_grace_period": "10x"}, "services.a.stop_grace_period", 'unknown unit "x"'),
        ({"healthcheck": {"interval": "10"}}, "services.a.healthcheck.interval",
         "missing unit"),
        ({"deploy": {"restart_policy": {"window": "1y"}}},
         "services.a.deploy.restart_policy.window", 'unknown unit "y"'),
        ({"mem_limit": "10x"}, "services.a.mem_limit", "unknown suffix 'x'"),
        ({"shm_size": "-1g"}, "services.a.shm_size", "cannot be negative"),
        ({"deploy": {"resources": {"limits": {"memory": "1gi"}}}},
         "services.a.deploy.resources.limits.memory", "unknown suffix 'gi'"),
        ({"deploy": {"resources": {"limits": {"cpus": "abc"}}}},
         "services.a.deploy.resources.limits.cpus", "must be a number"),
        ({"volumes": [{"type": "tmpfs", "target": "/t", "tmpfs": {"size": "1gi"}}]},
         "services.a.volumes[0].tmpfs.size", "unknown suffix 'gi'"),
        ({"build": {"context": ".", "shm_size": "1x"}}, "services.a.build.shm_size",
         "unknown suffix 'x'"),
        ({"volumes": ["vol:/b:ro:extra"]}, "services.a.volumes[0]", "too many colons"),
        ({"volumes": [":/x"]}, "services.a.volumes[0]", "empty section"),
        ({"volumes": [{"type": "tmpfs"}]}, "services.a.volumes[0]", "missing a mount target"),
        ({"command": "echo 'a"}, "services.a.command", "invalid command line string"),
        ({"entrypoint": "echo (a)"}, "services.a.entrypoint", "invalid command line string"),
        ({"privileged": "maybe"}, "services.a.privileged", "must be a boolean"),
        ({"cpu_shares": "abc"}, "services.a.cpu_shares", "must be an integer"),
        ({"cpus": "x"}, "services.a.cpus", "must be a number"),
        ({"ulimits": {"nofile": "abc"}}, "services.a.ulimits.nofile", "must be an integer"),
        ({"secrets": [{"source": "s", "mode": "99"}]}, "services.a.secrets[0].mode",
         "invalid file mode"),
        ({"extra_hosts": ["justhost"]}, "services.a.extra_hosts", "missing IP"),
        ({"devices": [{"source": "/dev/h"}]}, "services.a.devices[0]", "missing a mount target"),
        ({"scale": 2, "deploy": {"replicas": 3}}, "services.a.scale",
         "can't set distinct values on 'scale' and 'deploy.replicas'"),
        ({"cpus": 0.5, "deploy": {"resources": {"limits": {"cpus": "1"}}}}, "services.a.cpus",
         "'deploy.resources.limits.cpus'"),
        ({"mem_reservation": "2m", "deploy": {"resources": {"reservations": {"memory": "1m"}}}},
         "services.a.mem_reservation", "'deploy.resources.reservations.memory'"),
        ({"env_file": ["/nonexistent/pycompose-test.env"]}, "services.a.env_file", "not found"),
    ],
)
def test_invalid_value_is_reported_with_its_path(
    service: dict[str, Any], path: str, message: str
) -> None:
    errors = _errors(service)
    assert path in errors, errors
    assert message in errors[path]


def test_every_error_is_reported_at_once() -> None:
    errors = _errors(
        {"ports": ["8080:80", "80:80:80:80", "70000"], "mem_limit": "1x",
         "healthcheck": {"timeout": "5"}},
        networks={"n": {"name": "a", "external": {"name": "b"}}},
    )
    assert set(errors) == {
        "services.a.ports[1]", "services.a.ports[2]", "services.a.mem_limit",
        "services.a.healthcheck.timeout", "networks.n",
    }
    assert "can't use both 'networks.external.name' (deprecated)" in errors["networks.n"]


@pytest.mark.parametrize("field", ["driver", "driver_opts", "labels"])
def test_external_volume_cannot_be_configured(field: str) -> None:
    value: Any = "local" if field == "driver" else {"a": "b"}
    errors = _errors({"volumes": ["vol:/x"]},
                     volumes={"vol": {"external": True, field: value}})
    assert f'conflicting parameters "external" and "{field}"' in errors["volumes.vol"]


def test_equal_twins_are_accepted() -> None:
    out = normalize(
        {"services": {"a": {"image": "x", "scale": "2", "cpus": "0.5", "mem_limit": "1g",
                            "deploy": {"replicas": 2, "resources": {
                                "limits": {"cpus": 0.5, "memory": "1024m"}}}}}},
        project_name="p", project_dir="/p", environ=ENVIRON, read_env_file=_no_env_files,
    )
    service = out["services"]["a"]
    assert service["scale"] == 2
    assert service["deploy"]["resources"]["limits"] == {"cpus": 0.5, "memory": "1073741824"}
