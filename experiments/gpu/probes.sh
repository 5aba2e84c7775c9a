#!/usr/bin/env bash
# One call on a 2-GPU machine (nvidia-h200-x2) for the measurements that each take minutes, side by
# side so that none shares its GPU with another timed job:
#   GPU 0, one after another: the population probe in fp32 and bf16 (experiments/gpu/population_probe.py,
#   the weighting study's 20-minute block); the 185 M regional-compilation bench now that every block
#   shape compiles (the speed issue's warm-up); the sampling bench with torch.compile's
#   reduce-overhead beside the CUDA graphs (its batch-1 targets), in what time is left.
#   GPU 1: the adversarial HiFi-GAN vocoder (vocoder_check.sh with VOC_ARGS=train.vocoder.adversarial=true).
#     bash experiments/gpu/probes.sh        (carry .whl and .carry; DEADLINE_S, default 570)
# Comes back: $OUT/probes.tgz (GPU 0's rows and logs), and vocoder_check.sh's logs.tgz and vocoder.tgz.
set -uo pipefail
T0=$(date +%s)
source "$(dirname "$0")/common.sh"
L=runs/probes; mkdir -p $L
log() { echo "== $(date -u +%T) $*" | tee -a $L/phases.txt; }
{ nvidia-smi -L; date -u; python3 -c "import torch; print('torch', torch.__version__)"; } >> $L/device.txt
left() { echo $(( ${DEADLINE_S:-570} - ($(date +%s) - T0) - ${1:-0} )); }
(
  export CUDA_VISIBLE_DEVICES=1
  VOC_ARGS=train.vocoder.adversarial=true MINUTES=${VOC_MINUTES:-4.5} SKIP_PROBE=1 \
    timeout -k 10 $(left 20) bash experiments/gpu/vocoder_check.sh > $L/vocoder_check.log 2>&1
) &
(
  export CUDA_VISIBLE_DEVICES=0
  log "population probe, fp32"
  timeout 120 python3 experiments/gpu/population_probe.py --members 1,4,8,17 --out $L/population.jsonl > $L/population.log 2>&1
  log "population probe, bf16"
  timeout 120 python3 experiments/gpu/population_probe.py --members 1,4,8,17 --bf16 --out $L/population.jsonl >> $L/population.log 2>&1
  log "regional compilation, 185 M"
  timeout 200 python3 -m bsa.cli.bench --what training --models 185m --batch-185m 64 --combos bf16,bf16+regional \
    --out $L/regional.json > $L/regional.log 2>&1
  log "sampling, CUDA graphs and reduce-overhead ($(left 30) s)"
  timeout -k 5 $(left 30) python3 -m bsa.cli.bench --what sampling --sampling-compile cuda-graphs,reduce-overhead \
    --out $L/sampling.json > $L/sampling.log 2>&1
  log "GPU 0 done"
)
wait
log done
tar czf "$OUT/probes.tgz" -C $L .
ls -la "$OUT"
