#!/usr/bin/env bash
# Set up .venv if needed, then run the advgame command with the given arguments.
# Example: scripts/advgame.sh paper1 --quick --out runs/paper1-quick
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec .venv/bin/advgame "$@"
