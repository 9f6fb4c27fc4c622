#!/usr/bin/env bash
# SG-SCI's Table 3 (loss switches) and GCA ablation, with the ViGA-style baseline, on the synthetic set.
# Usage: bash benchmarks/point_tables.sh [SIZE] [EPOCHS] [SEEDS_OF_THE_ROWS_WITHOUT_GLOBAL]
# (default: bench, 2 epochs; 3 seeds for the rows with the global loss, seed 0 for the three without it;
#  docs/results.md has all rows at 3 seeds: pass "0 1 2")
set -euo pipefail
size=${1:-bench}; epochs=${2:-2}; rest=${3:-0}
json=artifacts/results/point_${size}.json
run() { local seeds=$1; shift; python benchmarks/synthetic_results.py --size "$size" --seeds $seeds --json "$json" --set "train.epochs=$epochs" "$@"; }
sg=(--config sg_sci_synthetic_ci)
run "0 1 2" --config viga_synthetic_ci --tag viga
run "0 1 2" "${sg[@]}" --tag sg_sci
run "0 1 2" "${sg[@]}" --tag sg_sci_no_gca --set model.params.gca=false
run "0 1 2" "${sg[@]}" --tag global --set model.params.use_fm=false --set model.params.use_mf=false
run "0 1 2" "${sg[@]}" --tag global+fm --set model.params.use_mf=false
run "0 1 2" "${sg[@]}" --tag global+mf --set model.params.use_fm=false
run "$rest" "${sg[@]}" --tag fm --set model.params.use_global=false --set model.params.use_mf=false
run "$rest" "${sg[@]}" --tag mf --set model.params.use_global=false --set model.params.use_fm=false
run "$rest" "${sg[@]}" --tag fm+mf --set model.params.use_global=false
