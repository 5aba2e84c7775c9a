#!/usr/bin/env bash
# Issue "Speed at AudioLDM scale" on the device machine: the CUDA-graph tests, how K distillation
# processes share the GPU (eager and graphed), and `bsa bench` rows side by side in one run.
#   PARTS="tests probe training sampling" bash experiments/gpu/speed.sh
# PARTS=sampling: MODES (default off,cuda-graphs; e.g. loop-graphs,cuda-graphs), SAMPLING_MODELS (default
# embedded,185m), SAMPLING_S its time limit.
# PARTS=training: TRAINING_MODELS (default embedded,185m), COMBOS (a combination with +profile also has
# its kernels by time and kind: bsa.report.bench.kernel_table), TRAINING_S its time limit.
# PARTS=issue: one bench run of sampling and training with the issue's figures (bsa bench --summary).
# PARTS=ddp (on nvidia-h100-x2): the 185 M model's DDP scaling, 1 against 2 GPUs (bsa bench --what ddp;
# BUCKET_MB: gradient bucket size, default trainer.ddp_bucket_mb's; COMM_HOOKS: the 2-GPU runs' hooks
# after the one 1-GPU run, each none, bf16 or fp16 (trainer.ddp_comm_hook) or noop (nothing sent: what
# the exchange costs); DDP_S: each run's time limit).
# Everything lands in $OUT/speed.tar.gz.
set -uo pipefail
source "$(dirname "$0")/common.sh"
L=runs/speed; mkdir -p $L; HM=$(date -u +%H%M)
log() { echo "== $(date -u +%T) $*" | tee -a $L/phases.txt; }
{ nvidia-smi -L; date -u; python3 -c "import torch; print('torch', torch.__version__)"; } >> $L/device.txt
for part in ${PARTS:-tests probe training sampling}; do
  log "$part"
  case $part in
    tests) timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_graphs.py tests/test_population.py > $L/pytest.log 2>&1 ;;
    probe)
      for graphs in "" --graphs; do
        for K in ${PROBE_K:-1 8 16}; do
          start=$(( $(date +%s) + 15 + 2 * K ))
          for i in $(seq $K); do
            timeout 150 python3 experiments/gpu/parallel_throughput.py --start-at $start --window ${WINDOW:-12} $graphs \
              >> $L/probe_K${K}${graphs}.jsonl 2>> $L/probe.err &
          done
          wait
          python3 -c "import json,sys; r=[json.loads(l) for l in open('$L/probe_K${K}${graphs}.jsonl')]; print('K=$K graphs=${graphs:-off}', len(r), 'procs', round(sum(x['samples_per_s'] for x in r)), 'samples/s in all')" | tee -a $L/phases.txt
        done
      done ;;
    training) timeout ${TRAINING_S:-300} python3 -m bsa.cli.bench --what training --models ${TRAINING_MODELS:-embedded,185m} --batch-185m 64 \
        --combos ${COMBOS:-fp32,fp32+graphs,bf16,bf16+graphs,bf16+graphs+cudnn,bf16+graphs+lpnorm,bf16+graphs+cudnn+lpnorm} --out $L/training.json > $L/training.log 2>&1 ;;
    issue) timeout 560 python3 -m bsa.cli.bench --what sampling,training --models embedded,185m --batch-185m 64 \
        --combos ${COMBOS:-fp32,fp32+graphs,bf16,bf16+graphs,bf16+graphs+cudnn+lpnorm,bf16+regional+graphs} --sampling-compile off,cuda-graphs \
        --out $L/issue.json --summary $L/summary.json > $L/issue.log 2>&1 ;;
    ddp)  # the 185 M distillation step on 1 GPU, then Lightning DDP on 2 (the x2 kinds) once per hook, same per-GPU batch
      timeout ${DDP_S:-280} python3 -m bsa.cli.bench --what ddp --models 185m --devices 1 --ddp-batch ${DDP_BATCH:-64} \
        ${BUCKET_MB:+--bucket-mb $BUCKET_MB} --out $L/ddp1.json > $L/ddp1.log 2>&1
      for hook in ${COMM_HOOKS:-none}; do
        timeout ${DDP_S:-280} python3 -m bsa.cli.bench --what ddp --models 185m --devices 2 --ddp-batch ${DDP_BATCH:-64} \
          ${BUCKET_MB:+--bucket-mb $BUCKET_MB} --comm-hook $hook --out $L/ddp2-$hook.json > $L/ddp2-$hook.log 2>&1
      done
      timeout 60 python3 -m bsa.cli.bench --from $L/ddp1.json $L/ddp2-*.json --summary $L/ddp_summary.json >> $L/ddp1.log 2>&1 ;;
    sampling) timeout ${SAMPLING_S:-400} python3 -m bsa.cli.bench --what sampling --sampling-compile ${MODES:-off,cuda-graphs} --models ${SAMPLING_MODELS:-embedded,185m} \
        --out $L/sampling-$HM.json > $L/sampling-$HM.log 2>&1 ;;  # one file per call: a warm machine's runs add up
  esac
done
log done
tar czf $OUT/speed.tar.gz -C runs speed
