"""``GET /containers/{id}/top``: the host's ``ps`` output, kept to the container's processes.

As dockerd does, ``ps`` runs on the host with the caller's ``ps_args`` and the rows whose PID
column is one of the container's processes (from the runtime) are returned.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Iterable
from typing import Any

from pycompose.engine.errors import EngineError, InvalidArgument


async def top(pids: Iterable[int], ps_args: str) -> dict[str, Any]:
    """``{"Titles": [...], "Processes": [[...], ...]}``."""
    try:
        args = shlex.split(ps_args)
    except ValueError as err:
        raise InvalidArgument(f"invalid ps_args {ps_args!r}: {err}") from err
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, errout = await proc.communicate()
    if proc.returncode != 0:
        raise EngineError(f"Error running ps: {errout.decode(errors='replace').strip()}")
    return parse_ps(out.decode(errors="replace"), set(pids))


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    """Split ``ps`` output into titles and the rows of ``pids`` (last column keeps spaces)."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise EngineError("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    column = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= column or not fields[column].isdigit():
            continue
        if int(fields[column]) in pids:
            rows.append(fields)
    return {"Titles": titles, "Processes": rows}
