"""The config hash: a pure function of a service's canonical configuration.

It is stored in the ``com.docker.compose.config-hash`` label; ``up`` recreates a container
when the hash of its service changed. Keys that do not change the container itself (how it
is built, how many replicas, start order, profiles) are left out, so that scaling or
reordering never recreates containers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

_IGNORED = ("build", "pull_policy", "scale", "depends_on", "profiles")


def service_hash(service: Mapping[str, Any]) -> str:
    """sha256 hex digest of the service's canonical JSON, minus the ignored keys."""
    data = {k: v for k, v in service.items() if k not in _IGNORED}
    deploy = data.get("deploy")
    if isinstance(deploy, Mapping) and "replicas" in deploy:
        rest = {k: v for k, v in deploy.items() if k != "replicas"}
        if rest:
            data["deploy"] = rest
        else:
            del data["deploy"]
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()
