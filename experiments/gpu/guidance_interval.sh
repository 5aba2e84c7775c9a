#!/usr/bin/env bash
# The reading of docs/results/fidelity.md "Fidelity to the teacher" ("where the gain sits"): do the Min-SNR students
# beat their teacher in loudness, background and FAD vs real because they leave guidance out at the
# noisiest steps? `bsa evaluate` of the shipped teacher at 200 steps with guidance only for
# t ≤ T_HI (eval.guidance_interval=[0,T_HI]), paired with the teacher guided everywhere, on
# EVAL_CLIPS test captions through the default vocoder; one metrics JSON per T_HI in
# $OUT/guidance-interval.tgz. T_HI=999 is the teacher as it is sampled.
#   T_HIS="999 900 800 700 500" bash experiments/gpu/guidance_interval.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
L=runs/guidance-interval; mkdir -p $L
DATA=$GPU_DATA
if [ ! -f runs/session/data.done ]; then  # the test split's clips (session.sh builds them once per machine)
  timeout 150 python3 -m bsa.cli.data experiments/embedded-gpu.yaml $DATA > $L/data.log 2>&1 || exit 1
fi
for hi in ${T_HIS:-999 900 800 700 500}; do
  echo "== $(date -u +%T) t_hi $hi" >> $L/phases.txt
  timeout ${EACH_S:-150} python3 -m bsa.cli.evaluate experiments/embedded-gpu.yaml $DATA eval.num_clips=${EVAL_CLIPS:-1000} \
    eval.batch_size=250 eval.steps=200 eval.baselines=false eval.cuda_graphs=true \
    eval.guidance_interval=[0,$hi] eval.out=$L/t$hi > $L/t$hi.log 2>&1
  cp $L/t$hi/metrics.json $L/metrics-t$hi.json 2>/dev/null
  # packed after each: a call that ends early still brings back the ones done
  tar czf $OUT/guidance-interval.tgz -C $L $(cd $L && ls metrics-*.json *.log phases.txt 2>/dev/null)
done
