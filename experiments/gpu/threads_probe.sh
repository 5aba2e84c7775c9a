#!/usr/bin/env bash
# Issue "A weighting study…": does a machine stall when many `bsa distill` processes start at once,
# each with a thread pool of one thread per core, and does OMP_NUM_THREADS = cores / runs (what
# `bsa compare` now sets) cure it? K runs of the embedded-gpu preset (from the shipped teacher, no
# guided stage, no evaluation) started together for W seconds, first with torch's default threads,
# then split; prints each run's set-up time and the last optimizer step its progress bar showed.
#   K=17 W=50 bash experiments/gpu/threads_probe.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
K=${K:-17}; W=${W:-50}
EXP=experiments/embedded-gpu.yaml
D="data.train_clips=${CLIPS:-2048} data.test_clips=64 data.num_workers=16 models.text_encoder=precomputed:.carry/text_embeddings.pt"
echo "== $(date -u +%T) data, cache ($(nproc) cores)"
timeout 60 python3 -m bsa.cli.data $EXP $D > /tmp/data.log 2>&1 || { tail /tmp/data.log; exit 1; }
timeout 90 python3 -m bsa.cli.cache $EXP $D > /tmp/cache.log 2>&1 || { tail /tmp/cache.log; exit 1; }
for mode in default split; do
  if [ $mode = split ]; then export OMP_NUM_THREADS=$(( $(nproc) / K > 0 ? $(nproc) / K : 1 )); else unset OMP_NUM_THREADS; fi
  echo "== $(date -u +%T) $mode: $K runs for $W s, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
  for i in $(seq $K); do
    timeout $W python3 -m bsa.cli.distill $EXP $D distill.guided_stage=false distill.eval_clips=0 distill.target_steps=100 \
      data.resident=true paths.output_root=/tmp/probe-$mode distill.run_name=r$i > /tmp/probe-$mode-$i.log 2>&1 &
  done
  wait
  for i in $(seq $K); do
    echo "r$i $(grep -o 'set-up .* s ' /tmp/probe-$mode-$i.log) step $(tr '\r' '\n' < /tmp/probe-$mode-$i.log | grep -ao '[0-9]*/800' | tail -1)"
  done
  tail -c 400 /tmp/probe-$mode-1.log | tr '\r' '\n' | tail -2
done
echo "== $(date -u +%T) done"
