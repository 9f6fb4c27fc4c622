#!/usr/bin/env bash
# VLANet and FSAN with their main ablations (VLANet without the cascaded cross-modal attention, FSAN
# without the inner/outer losses) on the synthetic set. The full-supervision ceiling is 2D-TAN's row
# from the same set (benchmarks/synthetic_results.py with tan2d_synthetic_ci).
# Usage: bash benchmarks/weak_tables.sh [SIZE] [EPOCHS]   (default: ci with each config's epochs, 3 seeds)
set -euo pipefail
size=${1:-ci}; epochs=${2:-}
extra=(); [ -n "$epochs" ] && extra=(--set "train.epochs=$epochs")
run() { python benchmarks/synthetic_results.py --size "$size" --seeds 0 1 2 --json "artifacts/results/weak_${size}.json" \
            "${extra[@]}" "$@"; }
run --config vlanet_synthetic_ci --tag vlanet
run --config vlanet_synthetic_ci --tag vlanet_no_cca --set model.params.self_attention=false --set model.params.cross_attention=false
run --config fsan_synthetic_ci --tag fsan
run --config fsan_synthetic_ci --tag fsan_no_sap --set model.params.inner_loss=false --set model.params.outer_loss=false
run --config tan2d_synthetic_ci --tag tan2d_ceiling
