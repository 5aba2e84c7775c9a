#!/usr/bin/env bash
# One device call that keeps a 4-GPU machine's GPUs on the open issues' jobs, each resumable, so that
# the next call is the same command issued the moment this one returns (a machine released between
# calls loses the runs: device time counts the machine's wall time, not its GPUs):
#   first, once per machine, the data and the latent cache (both jobs read them; two jobs encoding
#     the same cache at once took over 200 s each on 2026-11-28);
#   GPU $FIDELITY_GPU (none by default; seed 0's chain to 1 step is done): a fidelity chain,
#     `fidelity_ablation.sh` (VARIANTS, default seed 0 → TARGET 1; SEQUENTIAL=1: one after another);
#     each call brings back every chain's resume-<name>.tgz: `bash experiments/gpu/restore_resume.sh
#     <files_at>` after it and carry ".resume" in the next, and a lost machine costs only the stage
#     in training (twice on 2026-11-28/29 it cost every chain);
#   GPU $TEACHER_GPU (none by default): the teacher table, `bsa evaluate` of the shipped teacher @ 200
#     with the baselines (real clips, their reconstruction, shuffled captions) through the default vocoder;
#   GPU $SPEED_GPU (none by default): the sampling bench alone on its GPU for the call's time
#     (`speed.sh`, SAMPLING_MODELS default 185m, MODES default compiled-loop-graphs; compiling the
#     185 M model's loop took longer than the 118 s left after a chain on 2026-11-28);
#   GPUs $STUDY_GPUS (1,2,3): the weighting study's map, `weighting_study.sh` with OVERLAY (default the
#     (floor, γ) map) to STEPS (default 4) scoring SCORE_STEPS (default [25,4]: one comparison gives
#     both blocks), its 17 weightings as populations of POPULATION (default 6: one per GPU), on SEEDS
#     (default 0; e.g. SEEDS=1,2 STEPS=25 POPULATION=9: two seeds' 25-step maps on four GPUs);
#   GPU $PROBE_GPU (none by default): the CUDA-graph GPU tests and the population trainer's step time.
#   GPU $INTERVAL_GPU (none by default): the teacher with guidance only below T_HIS, paired with
#     itself guided everywhere (`guidance_interval.sh`, ~1-2 min per T_HI).
# An empty STUDY_GPUS leaves the study out (on a 2-GPU machine: STUDY_GPUS=0,1 POPULATION=9).
# DEADLINE_S (560) bounds every job of the call.
#   bash experiments/gpu/session.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
D=${DEADLINE_S:-560}; T0=$(date +%s)
mkdir -p runs/session; L=runs/session
left() { echo $(( D - ($(date +%s) - T0) )); }
DATA=$GPU_DATA
if [ ! -f $L/data.done ]; then
  echo "== $(date -u +%T) data and cache" >> $L/phases.txt
  { timeout 150 python3 -m bsa.cli.data experiments/embedded-gpu.yaml $DATA &&
    timeout 400 python3 -m bsa.cli.cache experiments/embedded-gpu.yaml $DATA; } > $L/data.log 2>&1 && touch $L/data.done
  echo "== $(date -u +%T) data and cache: $( [ -f $L/data.done ] && echo done || echo FAILED)" >> $L/phases.txt
  cp $L/phases.txt $L/data.log $OUT/ 2>/dev/null
  [ -f $L/data.done ] || exit 1
fi
if [ -n "${FIDELITY_GPU:-}" ]; then
  GPUS=$FIDELITY_GPU VARIANTS=${VARIANTS:-s0:trainer.seed=0} TARGET=${TARGET:-1} DEADLINE_S=$(left) PACK_EMBEDDINGS=1 \
    bash experiments/gpu/fidelity_ablation.sh > $L/fidelity.out 2>&1 &
fi
if [ -n "${TEACHER_GPU:-}" ] && [ ! -f runs/teacher-table/metrics.json ]; then  # once per machine
  (  # the whole job in the background: a trailing "&" after "a && b; c" backgrounds only c
    CUDA_VISIBLE_DEVICES=$TEACHER_GPU timeout $(( $(left) - 20 )) python3 -m bsa.cli.evaluate experiments/embedded-gpu.yaml $DATA \
      eval.num_clips=${EVAL_CLIPS:-1000} eval.batch_size=250 eval.steps=200 eval.baselines=true eval.out=runs/teacher-table \
      > $L/teacher-table.log 2>&1 && cp runs/teacher-table/metrics.json $OUT/teacher-table.json
    cp $L/teacher-table.log $OUT/
  ) &
fi
if [ -n "${SPEED_GPU:-}" ]; then
  CUDA_VISIBLE_DEVICES=$SPEED_GPU PARTS=sampling SAMPLING_MODELS=${SAMPLING_MODELS:-185m} \
    MODES=${MODES:-compiled-loop-graphs} SAMPLING_S=$(( $(left) - 40 )) bash experiments/gpu/speed.sh > $L/speed.out 2>&1 &
fi
if [ -n "${INTERVAL_GPU:-}" ]; then
  CUDA_VISIBLE_DEVICES=$INTERVAL_GPU timeout $(( $(left) - 15 )) bash experiments/gpu/guidance_interval.sh > $L/interval.out 2>&1 &
fi
if [ -n "${PROBE_GPU:-}" ]; then
  (
    export CUDA_VISIBLE_DEVICES=$PROBE_GPU
    timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py > $L/graph_tests.log 2>&1
    timeout 150 python3 experiments/gpu/population_step.py --members 1,9,17 --graphs --out $OUT/population_step_graphs.jsonl \
      > $L/population_step.log 2>&1
    cp $L/graph_tests.log $L/population_step.log $OUT/ 2>/dev/null
  ) &
fi
if [ -n "${STUDY_GPUS-1,2,3}" ]; then
  CUDA_VISIBLE_DEVICES=${STUDY_GPUS-1,2,3} OVERLAY=${OVERLAY-experiments/weighting-sweep.yaml} STEPS=${STEPS:-4} \
    SCORE_STEPS=${SCORE_STEPS:-[25,4]} POPULATION=${POPULATION:-6} DEADLINE_S=$(( $(left) - 5 )) \
    bash experiments/gpu/weighting_study.sh > $L/study.out 2>&1 &
fi
wait
tail -n 3 $L/*.out
