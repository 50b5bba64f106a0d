"""The CLI entry point: its fast process exit keeps what a normal exit does."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from pycompose.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False)  # fmt: skip


def test_installed_command_exits_with_status_and_flushed_output() -> None:
    proc = subprocess.run([sys.executable, "-m", "pycompose.cli.main", "--version"],
                          capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert proc.returncode == 0
    assert proc.stdout.startswith("pycompose, version ")


def test_usage_error_status_survives_the_fast_exit() -> None:
    proc = subprocess.run([sys.executable, "-m", "pycompose.cli.main", "no-such-command"],
                          capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert proc.returncode == 2
    assert "no such command" in proc.stderr


def test_exit_now_runs_atexit_handlers_and_flushes_buffered_output() -> None:
    proc = _run("""
        import atexit, sys
        from pycompose.cli.main import exit_now
        atexit.register(lambda: sys.stdout.write("from atexit\\n"))
        sys.stdout.write("buffered ")
        exit_now(7)
        sys.stdout.write("not reached\\n")
    """)
    assert proc.returncode == 7
    assert proc.stdout == "buffered from atexit\n"


def test_exit_now_leaves_the_exit_to_python_while_another_thread_runs() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        cli_main.exit_now(3)  # returns instead of ending the test process
    finally:
        release.set()
        worker.join()


def test_exit_now_leaves_the_exit_to_python_when_flushing_fails() -> None:
    proc = _run("""
        import atexit, io, sys
        from pycompose.cli.main import exit_now
        atexit.register(lambda: print("atexit ran once", file=sys.stderr))
        sys.stdout.close()
        exit_now(5)
        print("returned", file=sys.stderr)
        sys.stdout = io.StringIO()
        sys.exit(4)
    """)
    assert proc.returncode == 4
    assert proc.stderr.splitlines() == ["returned", "atexit ran once"]


def test_main_with_argv_returns_the_status() -> None:
    assert cli_main.main(["--version"]) == 0
