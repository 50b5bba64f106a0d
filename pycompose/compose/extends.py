"""Resolving ``extends``: a service starts from another service's configuration.

``extends: base`` names a service of the same file; ``extends: {file: other.yaml,
service: base}`` one of another file (loaded through the ``load_file`` callback, with its
relative paths already resolved against its own directory). Resolution is recursive and
the child is merged over its base with the same rules as ``-f`` files (merge.py).

docker compose v2.40 inherits every key, including ``depends_on``, ``links``,
``volumes_from``, ``network_mode`` and ``profiles`` (checked against the binary; the v1
exclusions no longer apply), so nothing is filtered here.

A ``!reset``/``!override`` tag at the top level of an extending service acts on the base
and is kept in the result, so it still acts on earlier ``-f`` files in the merge stage.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from pycompose.compose.errors import ComposeError
from pycompose.compose.merge import enforce_unique, merge_value, strip_tags
from pycompose.compose.tags import Override, Reset

LoadFile = Callable[[str], dict[str, Any]]
"""Returns another compose file's raw dict (interpolated, relative paths resolved)."""

_Ref = tuple[str, str]  # (file, service)

# The chain being resolved by apply_extends calls further up the stack: load_file may load
# the other file through the whole pipeline, extends included, so a cycle through several
# files shows up as nested apply_extends calls rather than inside one resolver.
_OUTER: ContextVar[tuple[_Ref, ...]] = ContextVar("pycompose_extends_chain", default=())


@dataclass
class _Resolver:
    """Resolves services of one or more files, remembering results and the current chain."""

    load_file: LoadFile
    outer: tuple[_Ref, ...] = ()
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: dict[_Ref, dict[str, Any]] = field(default_factory=dict)
    chain: list[_Ref] = field(default_factory=list)

    def services(self, file: str) -> dict[str, Any]:
        if file not in self.files:
            token = _OUTER.set((*self.outer, *self.chain))
            try:
                loaded = self.load_file(file)
            except OSError as err:
                raise ComposeError(f"cannot read {file}: {err.strerror or err}") from err
            finally:
                _OUTER.reset(token)
            self.files[file] = loaded
        found = self.files[file].get("services") or {}
        return found if isinstance(found, dict) else {}

    def resolve(self, file: str, name: str) -> dict[str, Any]:
        """The service ``name`` of ``file`` with its ``extends`` chain applied."""
        ref = (file, name)
        if ref in self.done:
            return self.done[ref]
        active = [*self.outer, *self.chain]
        if ref in active:
            raise _cycle_error([*active[active.index(ref) :], ref])
        service = self.services(file)[name]
        if not isinstance(service, dict) or "extends" not in service:
            result = service if isinstance(service, dict) else {}
            self.done[ref] = result
            return result
        self.chain.append(ref)
        try:
            base_file, base_name = _target(service["extends"], file, name)
            base_services = self.services(base_file)
            if base_name not in base_services:
                raise ComposeError(
                    f'cannot extend service "{name}": service "{base_name}" not found'
                    + ("" if base_file == file else f" in {base_file}"),
                    file=file,
                    path=("services", name, "extends"),
                )
            base = self.resolve(base_file, base_name)
            result = _extend(base, service, name, file)
        finally:
            self.chain.pop()
        self.done[ref] = result
        return result


def _target(spec: Any, file: str, name: str) -> tuple[str, str]:
    """(file, service) named by an ``extends`` value, the file made absolute."""
    where = ("services", name, "extends")
    if isinstance(spec, str):
        return file, spec
    if not isinstance(spec, dict) or not isinstance(spec.get("service"), str):
        raise ComposeError(
            "extends must be a service name or a mapping with a 'service' key",
            file=file,
            path=where,
        )
    other = spec.get("file")
    if other is None:
        return file, spec["service"]
    if not isinstance(other, str):
        raise ComposeError("extends.file must be a string", file=file, path=(*where, "file"))
    path = other if os.path.isabs(other) else os.path.join(os.path.dirname(file), other)
    return os.path.normpath(path), spec["service"]


def _extend(base: dict[str, Any], child: dict[str, Any], name: str, file: str) -> dict[str, Any]:
    """Merge ``child`` over ``base``; keep the child's top-level tags for the merge stage."""
    own = {k: v for k, v in child.items() if k != "extends"}
    merged = merge_value(strip_tags(base), own, ("services", name), file)
    merged = enforce_unique({"services": {name: merged}})["services"][name]
    for key, value in own.items():
        if isinstance(value, Reset | Override):
            merged[key] = value
    assert isinstance(merged, dict)
    return merged


def _cycle_error(chain: list[_Ref]) -> ComposeError:
    first_file, first = chain[0]
    steps = [f"{first} in {first_file}"] + [f"extends {s} in {f}" for f, s in chain[1:]]
    return ComposeError(
        "circular extends: " + " -> ".join(steps),
        file=first_file,
        path=("services", first, "extends"),
    )


def apply_extends(data: dict[str, Any], *, file: str, load_file: LoadFile) -> dict[str, Any]:
    """Resolve every ``extends`` of one compose file's raw dict (a new dict is returned).

    ``file`` is the absolute path of the document ``data`` came from: it names the file in
    errors and anchors a relative ``extends.file``. ``load_file(path)`` is called at most
    once per other file. Raises :class:`ComposeError` for a missing service, an extends
    cycle (naming the chain) or a malformed ``extends``.
    """
    services = data.get("services")
    if not isinstance(services, dict) or not any(
        isinstance(s, dict) and "extends" in s for s in services.values()
    ):
        return dict(data)
    file = os.path.normpath(file)
    resolver = _Resolver(load_file=load_file, outer=_OUTER.get(), files={file: data})
    resolved = {name: resolver.resolve(file, name) for name in services}
    return {**data, "services": resolved}
