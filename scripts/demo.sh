#!/usr/bin/env bash
# The main job: install, generate the synthetic benchmark, train, evaluate, localize a query.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MOMENTLOC_DATA=${MOMENTLOC_DATA:-$(cd .. && pwd)/shared/data}
exec momentloc demo "$@"
