"""`container run --rm busybox true` latency: pycompose, docker, and runc alone, in one run.

    .venv/bin/python bench/bench_run.py [--runs N] [--warmup N] [--no-docker]

Starts an isolated pycompose engine (busybox loaded from Debian's busybox-static) and, where
Docker is installed, an isolated dockerd (same busybox, through ``docker import``), then times
in rounds (every command once per round, so passing load falls on all alike):

- ``runc run`` on a prepared bundle (busybox rootfs, ``runc spec`` config running ``true``):
  the floor, what any engine must add to; and ``runc run`` of the same rootfs with the
  config our engine writes for such a container (Docker's hardening: its seccomp filter,
  masked paths, cgroup mounts), which is what runc itself costs inside every run below;
- ``pycompose run --rm busybox true``, on its default network and with ``--network
  none``; and ``pycompose --version``, the CLI's start-up alone, for scale;
- the real ``docker`` CLI against our engine, the same two ways;
- ``docker run --rm busybox true`` against the isolated dockerd. Its bridge is off
  (``--bridge=none``: no iptables changes on a shared machine), so its default network is
  ``none``; compare it with the ``--network none`` rows.

Prints one markdown table: medians, minimums, the ratio to runc alone and to docker. (No
RSS column: a child's ru_maxrss starts at this script's own RSS, which it inherits at exec.)
Needs root. Everything it starts is stopped and removed at the end; a leftover makes it fail.
If ``pycompose run`` does not work on this checkout, its rows say so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Command, Timing, pycompose_command, run_once, time_interleaved
from bench.engines import (
    BenchUnavailable,
    EngineProcess,
    docker_cli,
    docker_env,
    isolated_dockerd,
    load_busybox,
    pycompose_engine,
)

BUSYBOX = Path("/bin/busybox")
TARGET_MS = 60.0
RUNC_LABEL = "runc run (prepared bundle)"
RUNC_OURS_LABEL = "runc run (same rootfs, our engine's config)"
DOCKERD_LABEL = "docker run -> dockerd (network none)"


@contextlib.contextmanager
def runc_bundle() -> Iterator[tuple[Command, Path]]:
    """A bundle whose process is busybox ``true``, and the ``runc run`` command for it.

    runc keeps its state under a private ``--root``; ``runc run`` (not detached) deletes the
    container, its cgroups and namespaces when ``true`` exits, so the same id can run again.
    """
    runc = shutil.which("runc")
    if runc is None:
        raise BenchUnavailable("runc is not installed (Debian package runc)")
    tmp = Path(tempfile.mkdtemp(prefix="pcbench-runc-"))
    try:
        bundle, state = tmp / "bundle", tmp / "state"
        (bundle / "rootfs" / "bin").mkdir(parents=True)
        shutil.copy2(BUSYBOX, bundle / "rootfs" / "bin" / "busybox")
        for applet in ("sh", "true"):
            (bundle / "rootfs" / "bin" / applet).symlink_to("busybox")
        subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True, capture_output=True)
        config_path = bundle / "config.json"
        spec = json.loads(config_path.read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        config_path.write_text(json.dumps(spec))
        container_id = f"pcbench-{secrets.token_hex(4)}"
        argv = [runc, "--root", str(state), "run", "--bundle", str(bundle), container_id]
        yield Command(RUNC_LABEL, argv), bundle
        left = subprocess.run([runc, "--root", str(state), "list", "-q"], capture_output=True,
                              text=True, check=False).stdout.split()
        if left:
            raise RuntimeError(f"runc containers left behind: {left}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def with_engine_config(engine: EngineProcess, runc: Command, bundle: Path) -> Command:
    """``runc run`` of ``bundle``'s rootfs under the config.json our engine writes for
    ``run --network none busybox true`` (taken from a container it created and started,
    minus the bind mounts of that container's own /etc files), in a second bundle dir."""
    env = engine.env()
    cid = subprocess.run([*pycompose_command(), "create", "--network", "none", "busybox",
                          "true"], env=env, capture_output=True, text=True, check=True
                         ).stdout.strip()  # fmt: skip
    try:
        subprocess.run([*pycompose_command(), "start", "-a", cid], env=env, check=True,
                       capture_output=True)  # fmt: skip
        spec = json.loads((engine.config.root / "containers" / cid / "config.json").read_text())
    finally:
        subprocess.run([*pycompose_command(), "rm", "-f", cid], env=env, check=False,
                       capture_output=True)  # fmt: skip
    ours = bundle.parent / "ours"
    ours.mkdir()
    spec["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    spec["mounts"] = [m for m in spec["mounts"]
                      if not str(m.get("source", "")).startswith(str(engine.tmp))]  # fmt: skip
    spec["linux"]["cgroupsPath"] = ""  # runc's own default, as for the runc spec bundle
    (ours / "config.json").write_text(json.dumps(spec))
    argv = [*runc.argv[:-3], "--bundle", str(ours), f"{runc.argv[-1]}-ours"]
    return Command(RUNC_OURS_LABEL, argv)


def works(command: Command, cwd: Path) -> str | None:
    """None when ``command`` succeeds once, else the reason (its error), shortened."""
    try:
        run_once(command, cwd)
    except RuntimeError as err:
        return str(err).strip().splitlines()[-1][:300]
    return None


def our_commands(host: str, env: dict[str, str], docker_config: Path) -> list[Command]:
    """The pycompose CLI and the docker CLI against our engine, default network and none."""
    run = ["run", "--rm", "busybox", "true"]
    none = ["run", "--rm", "--network", "none", "busybox", "true"]
    denv = docker_env(docker_config)
    commands = [
        # Not a container at all: what the Python CLI costs before it talks to the engine.
        Command("pycompose --version (CLI start-up alone)", [*pycompose_command(), "--version"],
                env),
        Command("pycompose run (default network)", [*pycompose_command(), *run], env),
        Command("pycompose run --network none", [*pycompose_command(), *none], env),
    ]
    if shutil.which("docker"):
        commands += [
            Command("docker CLI -> pycompose engine (default network)", docker_cli(host, *run),
                    denv),
            Command("docker CLI -> pycompose engine (network none)", docker_cli(host, *none),
                    denv),
        ]
    return commands


def ratio(value: float, base: float) -> str:
    """``value / base`` as ``1.23x``."""
    return f"{value / base:.2f}x"


def render(rows: Sequence[Timing], runc: Timing, docker: Timing | None,
           skipped: Sequence[str]) -> str:
    """The markdown table, then a line per command that could not be measured."""
    lines = ["| command | median ms | min ms | time vs runc | faster than docker |",
             "|---|---|---|---|---|"]
    for row in rows:
        vs_docker = ratio(docker.median_ms, row.median_ms) if docker else "n/a"
        if row is docker:
            vs_docker = "reference"
        cells = [row.label, f"{row.median_ms:.1f}", f"{row.min_ms:.1f}",
                 ratio(row.median_ms, runc.median_ms), vs_docker]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"\n{line}" for line in skipped]
    return "\n".join(lines)


def measure(args: argparse.Namespace, cwd: Path) -> str:
    """Start everything, check each command once, time the ones that work, stop everything."""
    skipped: list[str] = []
    with contextlib.ExitStack() as stack:
        runc, bundle = stack.enter_context(runc_bundle())
        engine = stack.enter_context(pycompose_engine())
        load_busybox(engine)
        config_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pcbench-")))
        commands = [runc, with_engine_config(engine, runc, bundle),
                    *our_commands(engine.host, engine.env(), config_dir)]
        if args.docker:
            try:
                dockerd = stack.enter_context(isolated_dockerd())
            except BenchUnavailable as err:
                skipped.append(f"docker: not measured ({err})")
            else:
                load_busybox(dockerd)
                commands.append(Command(DOCKERD_LABEL, docker_cli(
                    dockerd.host, "run", "--rm", "--network", "none", "busybox", "true"),
                    docker_env(config_dir)))
        usable = []
        for command in commands:
            reason = works(command, cwd)
            if reason is None:
                usable.append(command)
            elif command.label.startswith("pycompose run"):
                skipped.append(f"pycompose run: not available ({reason})")
            else:
                skipped.append(f"not measured: {reason}")
        if runc not in usable:
            raise RuntimeError(f"runc alone does not run here: {skipped}")
        timings = time_interleaved(usable, cwd, args.runs, args.warmup)
    by_label = {t.label: t for t in timings}
    return render(timings, by_label[RUNC_LABEL], by_label.get(DOCKERD_LABEL), skipped)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run the benchmark, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-docker", dest="docker", action="store_false",
                        help="skip the Docker daemon even where it is installed")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_run.py needs root (runc, overlay mounts)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pcbench-cwd-") as cwd:
        print(measure(args, Path(cwd)))
    print(f"\ntarget: pycompose run under {TARGET_MS:.0f} ms; {args.runs} runs after "
          f"{args.warmup} warm-up, in rounds; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
