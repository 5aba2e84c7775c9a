#!/usr/bin/env bash
# Issue "Students that keep the teacher's quality", part 2: the recipe switches side by side, each a
# full `bsa distill`. Give each its own GPU where there are several: with CUDA graphs one chain nearly
# saturates an H200 (three side by side stepped at 9.1 steps/s each against 24.1 alone, 2026-11-28,
# 1.13× the work in all); side by side on one GPU they only share it. Each is a full `bsa distill`
# 200 → TARGET steps on the embedded-gpu preset with the paired metrics on EVAL_CLIPS captions.
#   VARIANTS="base:|fp32:distill.teacher_float32=true|v:distill.student_prediction=v_prediction" \
#     TARGET=25 bash experiments/gpu/fidelity_ablation.sh
# Each variant is name:overrides (overrides space-separated). Everything comes back in one tar
# (PACK_EMBEDDINGS=1: the final records' per-clip embeddings too, float16, in embeddings.tgz).
# SEEDS_SUMMARY="<command>": the variants are seeds of one recipe (e.g. trainer.seed=0|1|2), summarised
# together into fidelity/summary.json with that command recorded.
# Runs resume: a second call on the warm machine with the same VARIANTS continues them (the teacher's
# reference outputs are computed once, in reference.safetensors). A machine released between calls
# loses them: each call also brings back every run's resume state (resume-<name>.tgz, ~13 MB: records
# and the last finished student, experiments/gpu/pack_resume.py); `bash experiments/gpu/restore_resume.sh
# <files_at>` puts them in .resume/, and a call that carries ".resume" restores from it the runs the
# machine lacks, at their last finished stage (the stage in training starts again). Such a call is
# over the device's 64 MiB with everything else that travels: `bash experiments/gpu/travel.sh light`
# before it (one run's state fits), `... home` after. DEADLINE_S (default 560) bounds the
# whole call: training gets what is left after set-up minus the time to stop, summarise and pack
# (RUN_S caps it further). A stopped run ends its current evaluation first: -k hard-kills it 20 s on.
# SEQUENTIAL=1 runs the variants one after another, each alone on its GPU with the time left: a chain
# alone finishes its stages 3× sooner than three side by side (1.13× the work in all), so a machine
# lost between calls costs at most the stage in training, and a guided stage fits in one fresh call.
# On a machine with several GPUs the variants are spread over them, one GPU each in turn (a chain
# alone on its GPU is timed as it would run alone); GPUS="1" (space-separated ids) keeps them to
# those GPUs, leaving the others to another job of the same call.
set -uo pipefail
T0=$(date +%s)
source "$(dirname "$0")/common.sh"
A=runs/ablation; L=$A/logs; mkdir -p $L
EXP=${EXP:-experiments/embedded-gpu.yaml}  # EXP, DATA_ARGS: another world (the CPU rehearsal of this script)
D=${DATA_ARGS:-$GPU_DATA}
log() { echo "== $(date -u +%T) $*" | tee -a $L/phases.txt; }
{ nvidia-smi -L; date -u; python3 -c "import torch; print('torch', torch.__version__)"; } >> $L/device.txt
if [ ! -f runs/session/data.done ] && [ ! -f $A/data.done ]; then  # once per machine (checking costs 31 s a call)
  log data;  timeout 200 python3 -m bsa.cli.data $EXP $D > $L/data.log 2>&1 || { tail $L/data.log; exit 1; }
  log cache; timeout 200 python3 -m bsa.cli.cache $EXP $D > $L/cache.log 2>&1 || { tail $L/cache.log; exit 1; }
  touch $A/data.done
fi
IFS='|' read -ra VS <<< "${VARIANTS:-base:|fp32:trainer.precision=32-true|fp32+v:trainer.precision=32-true distill.student_prediction=v_prediction|fp32+x:trainer.precision=32-true distill.student_prediction=sample}"
time_left() { echo $(( ${DEADLINE_S:-560} - ($(date +%s) - T0) - 20 - 45 )); }  # stop (-k 20), summaries and packs (~15 s on 2026-11-29)
left=$(time_left)
run_s=$(( ${RUN_S:-$left} < left ? ${RUN_S:-$left} : left ))
ngpu=$(nvidia-smi -L | grep -c '^GPU'); i=0
read -ra GPU_IDS <<< "${GPUS:-$(seq -s ' ' 0 $(( (ngpu > 0 ? ngpu : 1) - 1 )))}"
for v in "${VS[@]}"; do
  name=${v%%:*}; extra=${v#*:}; gpu=${GPU_IDS[$(( i++ % ${#GPU_IDS[@]} ))]}
  if [ ! -d $A/$name ] && [ -d .resume/$name ]; then  # a fresh machine: the state an earlier one packed
    cp -r .resume/$name $A/$name && log "restored $name from .resume ($(ls .resume/$name | grep -c '^stage') stages finished)"
  fi
  if [ -n "${SEQUENTIAL:-}" ]; then  # one after another, each with the call's time left
    left=$(time_left)
    run_s=$(( ${RUN_S:-$left} < left ? ${RUN_S:-$left} : left ))
    [ $run_s -gt 60 ] || { log "no time left for $name"; continue; }
  fi
  log "start $name on GPU $gpu for $run_s s ($extra)"
  CUDA_VISIBLE_DEVICES=$gpu timeout -k 20 $run_s python3 -m bsa.cli.distill $EXP $D distill.target_steps=${TARGET:-25} \
    distill.eval_clips=${EVAL_CLIPS:-1000} eval.batch_size=250 data.resident=true paths.output_root=$A distill.run_name=$name \
    eval.reference_cache=$A/reference.safetensors \
    ${COMMON:-} $extra > $L/$name.log 2>&1 &
  [ -z "${SEQUENTIAL:-}" ] || wait $!
done
wait
log done
for v in "${VS[@]}"; do
  name=${v%%:*}; mkdir -p $L/$name
  cp $A/$name/eval.jsonl $A/$name/profiles.jsonl $A/$name/summary.json $A/$name/config.yaml $L/$name/ 2>/dev/null
  timeout -k 5 25 python3 -m bsa.cli.fidelity $A/$name --out $L/$name/fidelity > $L/$name/fidelity.log 2>&1
done
if [ -n "${SEEDS_SUMMARY:-}" ]; then  # the variants are seeds of one recipe: one summary over them
  timeout 120 python3 -m bsa.cli.fidelity $(for v in "${VS[@]}"; do echo $A/${v%%:*}; done) --out $L/fidelity \
    --command "$SEEDS_SUMMARY" > $L/fidelity.log 2>&1
fi
tar czf "$OUT/ablation.tgz" -C $L . 2>/dev/null
# each run's resume state (records, last finished student), for a next call on another machine
timeout 60 python3 experiments/gpu/pack_resume.py "$OUT" $(for v in "${VS[@]}"; do echo $A/${v%%:*}; done) >> $L/phases.txt 2>&1
if [ -n "${PACK_EMBEDDINGS:-}" ]; then  # the final records' per-clip embeddings, float16, for paired differences between variants
  timeout 120 python3 - "$A" "$L/embeddings" "${VS[@]}" <<'PY'
import sys
from pathlib import Path
from safetensors.torch import load_file, save_file
root, out = Path(sys.argv[1]), Path(sys.argv[2])
for v in sys.argv[3:]:
    name = v.split(":", 1)[0]
    for f in sorted((root / name / "embeddings").glob("*.safetensors")):
        (out / name).mkdir(parents=True, exist_ok=True)
        save_file({k: t.half() for k, t in load_file(f).items()}, out / name / f.name)
PY
  tar czf "$OUT/embeddings.tgz" -C $L embeddings
fi
ls -la "$OUT"
