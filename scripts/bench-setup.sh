#!/usr/bin/env bash
# Create .venv-bench, a venv separate from .venv, for benchmarking against peer libraries
# (torchattacks, adversarial-robustness-toolbox, the reference AutoAttack). Idempotent:
# reinstalls only when pyproject.toml or this script changes. Usage: scripts/bench-setup.sh
#
# torchattacks needs torchvision; the only torchvision that imports here is 0.29.1, paired
# with torch 2.14.1 (both lie on this machine's disk; the torch wheel is a ~5.5 GB CUDA
# build that runs on CPU). advgame's torch range (>=2.2,<2.15) admits it. .venv keeps its
# CPU torch 2.13.0 untouched.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
venv=.venv-bench
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
  done
fi
stamp="$venv/.advgame-bench-installed"
want="$(cat pyproject.toml "$self" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv is up to date"
  exit 0
fi
# torch 2.14.1 + CUDA wheels take ~6 GB installed, more while pip unpacks: ask for 15 GB
# free unless the venv already has them.
echo "bench-setup: disk: $(df -h . | awk 'NR == 2 {print $4 " free of " $2 " on " $6}')"
need_kb=$((15 * 1024 * 1024))
avail_kb="$(df -Pk . | awk 'NR == 2 {print $4}')"
if [ "${avail_kb:-0}" -lt "$need_kb" ] && ! [ -x "$venv/bin/python" ]; then
  echo "bench-setup: need ~15 GB free for torch 2.14.1 (CUDA build)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip -q, less the warnings about this machine's local index folders that lack a package.
pip_install() {
  local rc=0
  "$venv/bin/pip" install -q "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } || rc=$?
  return "$rc"
}
if ! "$venv/bin/python" -c "import sys, torch, torchvision; sys.exit(0 if torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1') else 1)" 2>/dev/null; then
  pip_install "torch==2.14.1" "torchvision==0.29.1"
fi
# Pin torch/torchvision so that the later installs cannot move them.
pins="$(mktemp)"
trap 'rm -f "$pins"' EXIT
printf 'torch==2.14.1\ntorchvision==0.29.1\n' > "$pins"
pip_install -c "$pins" -e .
# multiprocess: ART's AutoAttack imports it but ART does not declare it.
# pyautoattack: Croce & Hein's AutoAttack code (github.com/fra31/auto-attack) on PyPI.
pip_install -c "$pins" torchattacks adversarial-robustness-toolbox multiprocess \
  "pyautoattack==0.2.0"
"$venv/bin/python" - <<'EOF'
import art, multiprocess, pyautoattack, torch, torchattacks, torchvision  # noqa: F401
import advgame  # noqa: F401
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"torchattacks {torchattacks.__version__}, art {art.__version__}, "
      f"pyautoattack {pyautoattack.__version__}")
EOF
echo "$want" > "$stamp"
