#!/usr/bin/env bash
# Issue "A benchmark worth distilling": one teacher trained across two device calls on the warm
# machine (the checkpoint stays under runs/, which is git-ignored and kept between calls).
#   PHASE=1 bash experiments/gpu/teacher_long.sh   data, cache, throughput probe, steps planned, train MIN1 minutes
#   (RUN=<folder> keeps several teachers apart; MIN1=0 trains to the end in phase 1)
#   PHASE=2 bash experiments/gpu/teacher_long.sh   resume to the end (MAX_MIN in all), evaluate @200 with CFG, weights (fp16) back
# Carried: .whl (WITHOUT_WANDB=1 bash ../shared/device/wheels.sh .whl importlib_metadata) and
# .carry/text_embeddings.pt (`make text-embeddings ARGS="data.train_clips=16000 data.test_clips=1000"`).
set -uo pipefail
source "$(dirname "$0")/common.sh"
A=${RUN:-runs/teacher-long}; L=$A/logs; mkdir -p $L
EXP=experiments/embedded-gpu.yaml
D="data.train_clips=16000 data.test_clips=1000 data.num_workers=16 models.text_encoder=precomputed:.carry/text_embeddings.pt"
R="${RECIPE:-train.teacher.size=embedded-large train.teacher.batch_size=512 train.teacher.lr=1e-3 train.teacher.weighting=min_snr train.teacher.ema_decay=0.9995 trainer.precision=bf16-mixed trainer.compile=default data.resident=true}"
T="paths.output_root=$A/ck train.teacher.out=$A/teacher train.teacher.val_every=100000 trainer.log_every_n_steps=200"
log() { echo "== $(date -u +%T) $*" | tee -a $L/phases.txt; }
{ nvidia-smi -L; date -u; python3 -c "import torch; print('torch', torch.__version__)"; } >> $L/device.txt
if [ "${PHASE:-1}" = 1 ]; then
  log data;  timeout 200 python3 -m bsa.cli.data $EXP $D > $L/data.log 2>&1 || { tail $L/data.log; exit 1; }
  log cache; timeout 200 python3 -m bsa.cli.cache $EXP $D > $L/cache.log 2>&1 || { tail $L/cache.log; exit 1; }
  if [ -n "${STEPS:-}" ]; then echo $STEPS > $A/steps.txt; else
    log probe
    SECONDS_EACH=${PROBE_S:-60} VARIANTS=${PROBE_VARIANTS:-resident:default} timeout 200 \
      python3 experiments/gpu/teacher_throughput.py $EXP $D $R > $L/probe.json 2> $L/probe.log || tail $L/probe.log
    # the cosine schedule spans both calls: steps = steady-state rate × the training seconds planned
    python3 - "$L/probe.json" "${TRAIN_S:-540}" > $A/steps.txt <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
rate = [r for r in rows if r["data"] == "resident" and r["compile"] == "default"][0]["steps_per_s"]
print(int(rate * float(sys.argv[2]) // 100 * 100))
PY
  fi
  log "train $(cat $A/steps.txt) steps, ${MIN1:-3.5} min in this call"
  # the time limit leaves room for compilation, the closing validation and the export
  timeout $(awk "BEGIN{print int(60 * ${MAX_MIN:-${MIN1:-3.5}}) + 180}") python3 -m bsa.cli.train teacher $EXP $D $R $T train.teacher.steps=$(cat $A/steps.txt) \
    train.stop_after_minutes=${MIN1:-3.5} ${MAX_MIN:+train.teacher.max_minutes=$MAX_MIN} > $L/train1.log 2>&1; echo "rc $? (3 = checkpointed, to be continued)" >> $L/train1.log
  ls -la $A/ck/train-teacher >> $L/phases.txt 2>&1
else
  log "resume to $(cat $A/steps.txt) steps (at most ${MAX_MIN:-10.5} min in all)"
  [ -d $A/teacher ] || timeout 480 python3 -m bsa.cli.train teacher $EXP $D $R $T train.teacher.steps=$(cat $A/steps.txt) \
    train.teacher.max_minutes=${MAX_MIN:-10.5} > $L/train2.log 2>&1; echo "rc $?" >> $L/train2.log
  log "evaluate @200 with CFG on 1000 captions"
  timeout 200 python3 -m bsa.cli.evaluate $EXP $D eval.num_clips=1000 eval.batch_size=250 eval.steps=200 \
    eval.model=$A/teacher eval.baselines=true distill.reference_teacher=$A/teacher eval.out=$A/eval > $L/eval.log 2>&1
  cp $A/eval/metrics.json $L/eval.json 2>/dev/null; cp $A/teacher/training.json $L/teacher.training.json 2>/dev/null
  A=$A python3 - <<'PY'
import os, shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
src, OUT = Path(os.environ["A"]) / "teacher", Path(os.environ["OUT"])
if src.is_dir():
    dst = src.parent / "half" / "teacher"; shutil.copytree(src, dst, dirs_exist_ok=True)
    for f in dst.glob("*.safetensors"):
        save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(f).items()}, f)
    os.system(f"tar czf {OUT}/teacher.tgz -C {dst.parent} teacher && split -b 15m -d {OUT}/teacher.tgz {OUT}/teacher.tgz.part && rm {OUT}/teacher.tgz")
PY
fi
log done
tar czf "$OUT/logs-phase${PHASE:-1}.tgz" -C $L . 2>/dev/null
ls -la "$OUT"
