#!/usr/bin/env bash
# Create .venv and install advgame into it (idempotent; reinstalls only when pyproject.toml
# changes). Usage: scripts/setup.sh [extras], e.g. scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=".venv/.advgame-installed-${extras:-core}"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch 2.13.0 first: its CPU build lies on this machine's disk; a bare 'torch' requirement
# in a fresh venv would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
target="."
[ -n "$extras" ] && target=".[${extras}]"
.venv/bin/pip install -q -e "$target"
echo "$want" > "$stamp"
