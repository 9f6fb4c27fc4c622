#!/usr/bin/env bash
# The multi-scale contrastive ablation (base / + within / + cross / + both) on the synthetic set, then
# base vs + cross-scale on the long-video set.
# Usage: bash benchmarks/snag_tables.sh [SIZE] [EPOCHS] [LONG_EPOCHS] [LONG_SEEDS]
# (default: the CI-sized set with the configs' 8 epochs, 3 seeds; long set 2 epochs, seed 0)
set -euo pipefail
size=${1:-ci}; epochs=${2:-8}; long_epochs=${3:-2}; long_seeds=${4:-0}
ablation() {
    python benchmarks/synthetic_results.py --size "$size" --seeds 0 1 2 --json "artifacts/results/snag_${size}.json" \
        --set "train.epochs=$epochs" --config snag_synthetic_ci --config snag_within_synthetic_ci \
        --config snag_cross_synthetic_ci --config snag_msc_synthetic_ci
}
long() {
    python benchmarks/synthetic_results.py --size long --seeds $long_seeds --json artifacts/results/snag_long.json \
        --set "train.epochs=$long_epochs" --config snag_synthetic_long --config snag_cross_synthetic_long --breakdowns
}
case "${PART:-all}" in
    ablation) ablation ;;
    long) long ;;
    *) ablation; long ;;
esac
