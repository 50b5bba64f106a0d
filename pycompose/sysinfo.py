"""Facts about the running system that more than one layer needs (stdlib only)."""

from __future__ import annotations

import os


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """Major and minor version of a kernel release string (``6.1.0-13-amd64``, ``6.8-rc3``;
    the running kernel's by default); ``(0, 0)`` when it cannot be read."""
    parts = (os.uname().release if release is None else release).split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1].split("-")[0] if c.isdigit()))
    except (IndexError, ValueError):
        return (0, 0)
