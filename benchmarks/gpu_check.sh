#!/usr/bin/env bash
# The GPU checks in one run (about 9 minutes on one H100/H200): the performance
# suite in fp32 and bf16 at the paper configs' batches, 2D-TAN and SnAG on the
# TACoS and ActivityNet configs with FLOP counts, SnAG up to 65,536 clips,
# torch.compile, CPU-vs-GPU parity of every model, and the synthetic CI
# accuracy of 2D-TAN and SnAG trained in fp32 and in bf16-mixed.
#
#   OUT=gpu_results bash benchmarks/gpu_check.sh
#
# Each step has its own time limit, so one slow step does not stop the rest;
# results go to $OUT (log.txt and results.tar with every JSON / Markdown table).
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-gpu_results}
R=$OUT/r
mkdir -p "$R"
PY=${PYTHON:-python3}
exec > >(tee -a "$OUT/log.txt") 2>&1

save() { tar -C "$OUT" -cf "$OUT/results.tar" r; }
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s) $(date +%T)"
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@"
  echo "=== $name: exit $? in $((SECONDS - t0)) s"
  save
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
$PY -c "import torch, lightning, momentloc; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"

S="$PY benchmarks/suite.py --device cuda --budget 3 --repeats 10 --limit 5"
step suite_fp32 130 $S --clips 256 1024 4096 16384 65536 --flops --json "$R/charades_fp32.json" --md "$R/charades_fp32.md"
step suite_bf16 60 $S --bf16 --no-scaling --flops --json "$R/charades_bf16.json" --md "$R/charades_bf16.md"
for ds in tacos activitynet; do
  step "${ds}_fp32" 25 $S --dataset $ds --models snag tan2d --no-scaling --flops --json "$R/${ds}_fp32.json" --md "$R/${ds}_fp32.md"
  step "${ds}_bf16" 25 $S --dataset $ds --models snag tan2d --no-scaling --bf16 --flops --json "$R/${ds}_bf16.json" --md "$R/${ds}_bf16.md"
done
step snag_long 30 $S --models snag --clips 8192 65536 --limit 20 --json "$R/snag_long.json" --md "$R/snag_long.md"
step compile_bf16 80 $S --models snag tan2d --bf16 --compile --no-scaling --json "$R/compile_bf16.json" --md "$R/compile_bf16.md"

# Accuracy, fp32 against bf16-mixed, on the CI synthetic benchmark (in the background, beside the parity check).
$PY -c "from pathlib import Path; from momentloc.data.synthetic import ensure_synthetic; ensure_synthetic(Path('artifacts/synthetic/ci'), 'ci')"
for cfg in tan2d_synthetic_ci snag_synthetic_ci; do
  for prec in 32-true bf16-mixed; do
    timeout 125 $PY benchmarks/synthetic_results.py --seeds 0 --config $cfg --set train.precision=$prec \
      --tag "${cfg}_${prec}" --out-dir /tmp/runs_$prec --json "$R/acc_${cfg}_${prec}.json" > "$R/acc_${cfg}_${prec}.log" 2>&1 &
  done
done
step parity 60 $PY benchmarks/cuda_parity.py --bf16
wait
tail -n 4 "$R"/acc_*.log
save
echo "=== done $(date +%T)"
