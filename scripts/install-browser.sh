#!/usr/bin/env bash
# Install headless Chromium for the browser tests (tests/test_report_browser.py, -m browser).
# Debian/Ubuntu, as root (or with sudo). Does nothing when Chromium is already there.
set -euo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then
    echo "install-browser: $(command -v "$b") is already installed"
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-browser: need root (or sudo) to apt-get install chromium" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium fonts-dejavu-core
command -v chromium
