#!/usr/bin/env bash
# Set up and run the whole test suite; this is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python -m pytest -q "$@"
