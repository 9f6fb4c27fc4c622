#!/usr/bin/env bash
# Create .venv and install momentloc with every extra (idempotent; reinstalls when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
# The page test drives Debian's chromium through Playwright (never `playwright install`: no browser download).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "note: could not install chromium; the page test will be skipped" >&2
fi
stamp=.venv/.momentloc-installed
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python -m pip install -q --upgrade pip 2>&1 | grep -v -i "warning" || true
  # The CPU wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
  python -m pip install -q "torch==2.13.0" 2>&1 | grep -v -i "warning" || true
  python -m pip install -q -e ".[video,serve,minilm,dev]" 2>&1 | grep -v -i "warning" || true
  python -c "import momentloc, torch, lightning" 
  echo "$want" > "$stamp"
fi
