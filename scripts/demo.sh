#!/bin/sh
# Set up (see setup.sh) and run the demo project in examples/hello.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cd examples/hello
echo "== pycompose config (the canonical project, as docker compose config prints it)"
../../.venv/bin/pycompose config
echo "== services in start order"
../../.venv/bin/python -c 'from pycompose.compose.loader import load; from pycompose.compose.discovery import ProjectOptions; from pycompose.compose.graph import start_order; print(" -> ".join(start_order(load(ProjectOptions()).model())))'
