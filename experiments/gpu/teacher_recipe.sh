#!/usr/bin/env bash
# Issue "A benchmark worth distilling": train two teacher recipes and the HiFi-GAN vocoder side by
# side on one GPU (each is launch-bound alone), then score them @200 steps with CFG on the test
# captions with Griffin-Lim and with the new vocoder. One device call:
#   bash experiments/gpu/teacher_recipe.sh        (env: MINUTES, TRAIN_CLIPS, TEST_CLIPS, A_ARGS, B_ARGS)
# Carried: .whl (WITHOUT_WANDB=1 bash ../shared/device/wheels.sh .whl importlib_metadata) and
# .carry/text_embeddings.pt (`make text-embeddings ARGS="data.train_clips=… data.test_clips=…"`).
set -uo pipefail
source "$(dirname "$0")/common.sh"
L=/tmp/recipe-logs; mkdir -p $L  # everything but logs.tgz and the weights stays here (8 files come back)
EXP=${EXP:-experiments/embedded-gpu.yaml}
MIN=${MINUTES:-4.0}
D="data.train_clips=${TRAIN_CLIPS:-16000} data.test_clips=${TEST_CLIPS:-1000} data.num_workers=16"
TE="${TEXT-models.text_encoder=precomputed:.carry/text_embeddings.pt} $D ${EXTRA:-}"
A=runs/recipe; mkdir -p $A
nvidia-smi -L > "$L/device.txt"; date -u >> "$L/device.txt"; python3 -c "import torch; print('torch', torch.__version__)" >> "$L/device.txt"
log() { echo "== $(date -u +%T) $*"; }
log data;  timeout 150 python3 -m bsa.cli.data $EXP $TE > "$L/data.log" 2>&1 || { tail "$L/data.log"; exit 1; }
log cache; timeout 150 python3 -m bsa.cli.cache $EXP $TE > "$L/cache.log" 2>&1 || { tail "$L/cache.log"; exit 1; }
T="train.teacher.max_minutes=$MIN train.teacher.steps=200000 train.teacher.val_every=2000 trainer.log_every_n_steps=100"
log "train: teacher A, teacher B, vocoder (in parallel, $MIN min each)"
timeout 400 python3 -m bsa.cli.train teacher $EXP $TE $T paths.output_root=$A/ckA train.teacher.out=$A/teacherA \
  ${A_ARGS:-train.teacher.size=embedded train.teacher.batch_size=1024 train.teacher.lr=1e-3 train.teacher.weighting=min_snr} > "$L/teacherA.log" 2>&1 &
timeout 400 python3 -m bsa.cli.train teacher $EXP $TE $T paths.output_root=$A/ckB train.teacher.out=$A/teacherB \
  ${B_ARGS:-train.teacher.size=embedded-large train.teacher.batch_size=1024 train.teacher.lr=5e-4 train.teacher.weighting=min_snr} > "$L/teacherB.log" 2>&1 &
timeout 400 python3 -m bsa.cli.train vocoder $EXP $TE paths.output_root=$A/ckV train.vocoder.out=$A/vocoder \
  train.vocoder.max_minutes=$MIN train.vocoder.steps=100000 train.vocoder.batch_size=64 trainer.log_every_n_steps=100 > "$L/vocoder.log" 2>&1 &
wait
for f in teacherA teacherB vocoder; do echo "-- $f"; grep -v '^\s*$' "$L/$f.log" | tail -n 3; done
log "evaluate @200 with CFG (in parallel)"
E="eval.num_clips=${TEST_CLIPS:-1000} eval.batch_size=250 eval.steps=200"
for t in A B; do
  for v in gl hifi; do
    voc=griffin-lim; [ $v = hifi ] && voc=$A/vocoder
    base=false; [ $t = A ] && base=true
    [ -d $A/teacher$t ] && timeout 240 python3 -m bsa.cli.evaluate $EXP $TE $E eval.model=$A/teacher$t models.vocoder=$voc \
      eval.baselines=$base distill.reference_teacher=$A/teacher$t eval.out=$A/eval_${t}_$v > "$L/eval_${t}_$v.log" 2>&1 &
  done
done
wait
log done
mkdir -p "$L/m"; for d in $A/eval_*; do [ -f $d/metrics.json ] && cp $d/metrics.json "$L/m/$(basename $d).json"; done
for m in teacherA teacherB vocoder; do [ -f $A/$m/training.json ] && cp $A/$m/training.json "$L/m/$m.training.json"; done
tar czf "$OUT/logs.tgz" -C "$L" . 2>/dev/null
# the weights in fp16 (what would be shipped), each under the 16 MB limit per file
python3 - <<'PY'
import os, shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
A, OUT = Path("runs/recipe"), Path(os.environ["OUT"])
for m in ("teacherA", "teacherB", "vocoder"):
    src = A / m
    if not src.is_dir():
        continue
    dst = A / "half" / m
    shutil.copytree(src, dst, dirs_exist_ok=True)
    for f in dst.glob("*.safetensors"):
        sd = load_file(f)
        save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, f)
    os.system(f"tar czf {OUT}/{m}.tgz -C {A / 'half'} {m} && split -b 15m -d {OUT}/{m}.tgz {OUT}/{m}.tgz.part && rm {OUT}/{m}.tgz")
PY
ls -la "$OUT"
