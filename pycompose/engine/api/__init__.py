"""The engine's HTTP API: a Docker Engine API server on a unix socket.

Kept empty on purpose: the client imports :mod:`pycompose.engine.api.streams` and must not pay
for the server's imports.
"""
