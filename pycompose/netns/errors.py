"""Errors of the networking layer.

``NetworkError`` is the base; it is an engine error so the API answers it with its status.
Requests that are wrong use the engine's ``InvalidArgument``/``NotFound``/``Conflict``.
"""

from __future__ import annotations

from pycompose.engine.errors import EngineError


class NetworkError(EngineError):
    """A kernel operation (netlink, nftables, namespaces) failed."""

    status = 500


class PortInUse(EngineError):
    """A host port asked for is held by one of our containers or by a host process."""

    status = 409
