"""Errors of the engine, each carrying the HTTP status the API answers with."""

from __future__ import annotations

from pycompose.errors import PycomposeError


class EngineError(PycomposeError):
    """Base of every engine error; ``status`` is the Docker Engine API status code."""

    status: int = 500


class NotFound(EngineError):
    """The named object (image, container, blob, ...) does not exist."""

    status = 404


class Conflict(EngineError):
    """The request conflicts with the current state (name in use, image in use, ...)."""

    status = 409


class InvalidArgument(EngineError):
    """The request or the data it refers to is malformed or unsupported."""

    status = 400
