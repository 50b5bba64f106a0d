"""The one error root of pycompose.

Every package has its own base class deriving from :class:`PycomposeError`; the CLI
catches only this root, prints one line and exits non-zero.
"""

from __future__ import annotations


class PycomposeError(Exception):
    """Base of every error pycompose raises on purpose."""

    exit_code: int = 1
