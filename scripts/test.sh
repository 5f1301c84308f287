#!/usr/bin/env bash
# Set up .venv with the dev extras, then lint, type-check and run the fast test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m slow, scripts/test.sh -k attacks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
if [ "${CI:-}" = "true" ] && [ -f scripts/install-browser.sh ]; then
  bash scripts/install-browser.sh || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest -q "$@"
