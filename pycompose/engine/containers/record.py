"""A container's persistent record and its state machine.

The record holds what Docker's inspect shows: the create request's ``Config`` and
``HostConfig`` (with defaults filled in), the state, timestamps and paths. Transitions go
through :meth:`ContainerState.transition`, which refuses moves the table does not allow,
so a stopped container cannot be paused and a running one cannot be removed unforced.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any

from pycompose.engine.errors import Conflict

ZERO_TIME = "0001-01-01T00:00:00Z"

# status -> statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"running", "removing", "exited"}),
    "running": frozenset({"paused", "exited", "restarting", "removing", "running"}),
    "paused": frozenset({"running", "exited", "removing"}),
    "restarting": frozenset({"running", "exited", "removing"}),
    "exited": frozenset({"running", "removing", "restarting", "exited"}),
    "dead": frozenset({"removing"}),
    "removing": frozenset({"dead"}),
}


def now_rfc3339() -> str:
    """UTC now with nanosecond-style precision, as Docker formats timestamps."""
    stamp = _dt.datetime.now(_dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


@dataclass
class ContainerState:
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: dict[str, Any] | None = None

    def can(self, target: str) -> bool:
        return target in TRANSITIONS.get(self.status, frozenset())

    def transition(self, target: str, name: str) -> None:
        """Move to ``target`` or raise :class:`Conflict` naming the container and states."""
        if not self.can(target):
            raise Conflict(f"container {name} is {self.status}: cannot move to {target}")
        self.status = target

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    def docker(self) -> dict[str, Any]:
        """The ``State`` object of Docker's inspect."""
        out: dict[str, Any] = {
            "Status": self.status,
            "Running": self.status in ("running", "paused"),
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }
        if self.health is not None:
            out["Health"] = self.health
        return out


@dataclass
class ContainerRecord:
    """Everything the engine persists about one container."""

    id: str
    name: str
    created: str
    image_id: str
    image_name: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    networking_config: dict[str, Any] = field(default_factory=dict)
    state: ContainerState = field(default_factory=ContainerState)
    restart_count: int = 0
    exec_ids: list[str] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    # The mounts as storage resolved them at create (ResolvedMount.to_json); ``mounts`` is
    # Docker's view of the same (inspect "Mounts").
    resolved_mounts: list[dict[str, Any]] = field(default_factory=list)
    network_settings: dict[str, Any] = field(default_factory=dict)
    # Set when the user stops it, so restart policies do not bring it back.
    manually_stopped: bool = False
    path: str = ""
    args: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def labels(self) -> dict[str, str]:
        labels = self.config.get("Labels") or {}
        assert isinstance(labels, dict)
        return labels

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        state = ContainerState(**data.pop("state", {}))
        return cls(state=state, **data)
