#!/usr/bin/env bash
# SG-SCI's Table 3 (loss switches) and GCA ablation, with the ViGA-style baseline, on the synthetic set.
# Usage: bash benchmarks/point_tables.sh [SIZE] [EPOCHS]   (default: bench, 3 epochs; 3 seeds each)
set -euo pipefail
size=${1:-bench}; epochs=${2:-3}
json=artifacts/results/point_${size}.json
run() { python benchmarks/synthetic_results.py --size "$size" --seeds 0 1 2 --json "$json" --set "train.epochs=$epochs" "$@"; }
run --config viga_synthetic_ci --tag viga
run --config sg_sci_synthetic_ci --tag "sg_sci"
run --config sg_sci_synthetic_ci --tag "sg_sci_no_gca" --set model.params.gca=false
run --config sg_sci_synthetic_ci --tag "global" --set model.params.use_fm=false --set model.params.use_mf=false
run --config sg_sci_synthetic_ci --tag "global+fm" --set model.params.use_mf=false
run --config sg_sci_synthetic_ci --tag "global+mf" --set model.params.use_fm=false
run --config sg_sci_synthetic_ci --tag "fm" --set model.params.use_global=false --set model.params.use_mf=false
run --config sg_sci_synthetic_ci --tag "mf" --set model.params.use_global=false --set model.params.use_fm=false
run --config sg_sci_synthetic_ci --tag "fm+mf" --set model.params.use_global=false
