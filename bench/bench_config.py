"""`pycompose config` against `docker compose config` on the same files, in one run.

    .venv/bin/python bench/bench_config.py [--runs N]

Two projects: a generated 200-service file (every service with ports, volumes,
environment, depends_on, healthcheck, labels) and a small 5-service file, where start-up
dominates. Prints a markdown table per project with medians and peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import docker_compose_binary, pycompose_command, table, time_command


def generate(services: int) -> str:
    lines = ["services:"]
    for i in range(services):
        lines += [
            f"  svc{i}:",
            f"    image: registry.example.com/team/app{i % 7}:${{TAG:-1.{i}}}",
            f"    command: python -m app --port {8000 + i} --name 'svc {i}'",
            "    environment:",
            f"      - SERVICE_INDEX={i}",
            "      - LOG_LEVEL=${LOG_LEVEL:-info}",
            "    labels:",
            f'      com.example.index: "{i}"',
            "    ports:",
            f'      - "127.0.0.1:{20000 + i}:{8000 + i}"',
            "    volumes:",
            f"      - ./data/svc{i}:/data",
            "      - shared:/shared:ro",
            "    healthcheck:",
            f"      test: curl -f http://localhost:{8000 + i}/health",
            "      interval: 10s",
            "      timeout: 2s",
            "    restart: unless-stopped",
        ]
        if i:
            lines += ["    depends_on:", f"      - svc{i - 1}"]
    lines += ["volumes:", "  shared: {}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    reference_bin = docker_compose_binary()
    ours = pycompose_command()
    with tempfile.TemporaryDirectory() as tmp:
        for label, count in (("200 services", 200), ("5 services", 5)):
            project = Path(tmp) / label.replace(" ", "-")
            project.mkdir()
            (project / "compose.yaml").write_text(generate(count))
            rows = []
            reference = None
            if reference_bin:
                reference = time_command(
                    "docker compose config", [reference_bin, "config"], project, args.runs
                )
                rows.append(reference)
            rows.append(time_command("pycompose config", [*ours, "config"], project, args.runs))
            print(f"\n### {label}\n\n{table(rows, reference)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
