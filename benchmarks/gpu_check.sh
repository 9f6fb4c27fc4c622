#!/usr/bin/env bash
# The GPU checks, in parts sized for a short lease on one H100/H200 (most important first):
#   speed:    (~9 min) every model at its paper batch in fp32 (train step, one query, 100 queries),
#             the slow ones in bf16, 2D-TAN and SnAG on the TACoS and ActivityNet configs in fp32
#             and bf16 with FLOP counts, SnAG at 8,192 and 65,536 clips, trainer against bare
#             steps, CPU-vs-GPU parity of every model and the GPU tests;
#   accuracy: (~4 min) the synthetic CI accuracy of 2D-TAN and SnAG trained in fp32 and bf16-mixed;
#   extra:    (~7 min) torch.compile, the point and weak models in IEEE fp32 (no TF32 matrix
#             products), and every model's one-query scaling up to 65,536 clips.
#
#   OUT=gpu_results bash benchmarks/gpu_check.sh speed
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
PART=${1:-speed}
if [ "$PART" = speed ]; then
  step suite_fp32 150 $S --no-scaling --flops --json "$R/charades_fp32.json" --md "$R/charades_fp32.md"
  step suite_bf16 60 $S --models viga sg_sci fsan snag --bf16 --no-scaling --flops --json "$R/charades_bf16.json" --md "$R/charades_bf16.md"
  for ds in tacos activitynet; do
    for p in "" --bf16; do
      step "${ds}${p}" 40 $S --dataset $ds --models snag tan2d --no-scaling --flops $p --json "$R/${ds}${p}.json" --md "$R/${ds}${p}.md"
    done
  done
  step snag_long 30 $S --models snag --clips 8192 65536 --limit 20 --json "$R/snag_long.json" --md "$R/snag_long.md"
  step trainer 60 $PY benchmarks/trainer_steps.py --device cuda --steps 40
  step parity 60 $PY benchmarks/cuda_parity.py --bf16
  step parity_banded 30 $PY benchmarks/cuda_parity.py --models tan2d --dataset tacos --set model.params.hidden_size=64 --pairs 2 --bf16
  step pytest_cuda 30 $PY -m pytest -q -p no:cacheprovider tests/test_loss_watch.py
elif [ "$PART" = accuracy ]; then
  # The synthetic CI benchmark, each config at its own epochs, fp32 and bf16-mixed side by side (4 runs at once).
  $PY -c "from pathlib import Path; from momentloc.data.synthetic import ensure_synthetic; ensure_synthetic(Path('artifacts/synthetic/ci'), 'ci')"
  for cfg in tan2d_synthetic_ci snag_synthetic_ci; do
    for prec in 32-true bf16-mixed; do
      timeout 230 $PY benchmarks/synthetic_results.py --seeds 0 --config $cfg --set train.precision=$prec \
        --tag "${cfg}_${prec}" --out-dir /tmp/runs_$prec --json "$R/acc_${cfg}_${prec}.json" > "$R/acc_${cfg}_${prec}.log" 2>&1 &
    done
  done
  wait
  tail -n 4 "$R"/acc_*.log
elif [ "$PART" = extra ]; then
  step compile_bf16 120 $S --models snag tan2d --bf16 --compile --no-scaling --json "$R/compile_bf16.json" --md "$R/compile_bf16.md"
  step fp32_highest 60 $S --models viga sg_sci fsan vlanet --matmul-precision highest --no-scaling --flops \
    --json "$R/charades_fp32_highest.json" --md "$R/charades_fp32_highest.md"
  step scaling 220 $S --clips 256 1024 4096 16384 65536 --json "$R/scaling.json" --md "$R/scaling.md"
else
  echo "unknown part '$PART' (speed, accuracy or extra)"; exit 2
fi
save
echo "=== done $(date +%T)"
