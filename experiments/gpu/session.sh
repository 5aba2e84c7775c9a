#!/usr/bin/env bash
# One device call that keeps a 4-GPU machine's GPUs on the open issues' jobs, each resumable, so that
# the next call is the same command issued the moment this one returns (a machine released between
# calls loses the runs: device time counts the machine's wall time, not its GPUs):
#   GPU $FIDELITY_GPU (0): a fidelity chain, `fidelity_ablation.sh` (VARIANTS, default seed 0 → 1 step);
#   GPUs $STUDY_GPUS (1,2): the weighting study's map, `weighting_study.sh` with OVERLAY (default the
#     (floor, γ) map, 25 steps), started STAGGER_S (100) later so that the chain's data step is done;
#   GPU $PROBE_GPU (3): the CUDA-graph GPU tests (tests/test_graphs.py), the population trainer with CUDA graphs (`population_step.py --graphs`, once per
#     machine), then the sampling bench (MODES, default compiled-loop-graphs,loop-graphs).
# An empty FIDELITY_GPU, STUDY_GPUS or PROBE_GPU leaves that job out (e.g. on a 2-GPU machine:
# FIDELITY_GPU= PROBE_GPU= STUDY_GPUS=0,1). DEADLINE_S (560) bounds every job of the call.
#   bash experiments/gpu/session.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
D=${DEADLINE_S:-560}; T0=$(date +%s)
mkdir -p runs/session; L=runs/session
left() { echo $(( D - ($(date +%s) - T0) )); }
if [ -n "${FIDELITY_GPU-0}" ]; then
  GPUS=${FIDELITY_GPU-0} VARIANTS=${VARIANTS:-s0:trainer.seed=0} TARGET=${TARGET:-1} DEADLINE_S=$D PACK_EMBEDDINGS=1 \
    bash experiments/gpu/fidelity_ablation.sh > $L/fidelity.out 2>&1 &
  sleep ${STAGGER_S:-100}
fi
if [ -n "${PROBE_GPU-3}" ]; then
  (
    export CUDA_VISIBLE_DEVICES=${PROBE_GPU-3}
    if [ ! -f $L/graph_tests.done ]; then  # the population's graphs against eager, before the map relies on them
      timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py > $L/graph_tests.log 2>&1 && touch $L/graph_tests.done
      cp $L/graph_tests.log $OUT/ 2>/dev/null
    fi
    if [ ! -f $L/population_step.done ]; then
      timeout 150 python3 experiments/gpu/population_step.py --members 1,9,17 --graphs --out $OUT/population_step_graphs.jsonl \
        > $L/population_step.log 2>&1 && touch $L/population_step.done
      cp $L/population_step.log $OUT/ 2>/dev/null
    fi
    s=$(( $(left) - 60 )); [ $s -gt 60 ] && PARTS=sampling MODES=${MODES:-compiled-loop-graphs,loop-graphs} SAMPLING_S=$s \
      bash experiments/gpu/speed.sh > $L/speed.out 2>&1
  ) &
fi
if [ -n "${STUDY_GPUS-1,2}" ]; then
  CUDA_VISIBLE_DEVICES=${STUDY_GPUS-1,2} OVERLAY=${OVERLAY-experiments/weighting-sweep.yaml} DEADLINE_S=$(( $(left) - 5 )) \
    bash experiments/gpu/weighting_study.sh > $L/study.out 2>&1 &
fi
wait
tail -n 3 $L/*.out
