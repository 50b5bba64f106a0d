#!/bin/sh
# Set up (see setup.sh) and run every check: ruff, mypy (strict) and the whole pytest suite.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
echo "== ruff"; ruff check pycompose tests bench
echo "== mypy"; mypy
echo "== pytest"
# Exit code 5 (no tests collected) is a failure too: pytest returns it as non-zero.
python -m pytest -q -p no:cacheprovider "$@"
