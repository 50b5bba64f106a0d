"""pycompose: a Compose-first multi-container orchestrator with its own engine."""

from __future__ import annotations

__version__ = "0.1.0"
