#!/usr/bin/env bash
# Install and run the test suite (slow tests are opt-in: pass -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MOMENTLOC_DATA=${MOMENTLOC_DATA:-$(cd .. && pwd)/shared/data}
exec python -m pytest "$@"
