#!/usr/bin/env bash
# Issue "A benchmark worth distilling", second call: train the HiFi-GAN vocoder alone, score the
# shipped teacher @200 (CFG) on the test captions with Griffin-Lim and with it (baselines: real
# clips, their reconstruction, shuffled captions), then probe where a teacher training step's time
# goes (experiments/gpu/teacher_throughput.py). Carried: .whl and .carry (see teacher_recipe.sh).
# VOC_ARGS: more overrides of the vocoder's training, e.g. VOC_ARGS=train.vocoder.adversarial=true
# (HiFi-GAN's discriminators and losses) with MINUTES=6 SKIP_PROBE=1.
set -uo pipefail
source "$(dirname "$0")/common.sh"
L=/tmp/vocoder-logs; mkdir -p $L
EXP=${EXP:-experiments/embedded-gpu.yaml}
TE="models.text_encoder=precomputed:.carry/text_embeddings.pt data.train_clips=16000 data.test_clips=1000 data.num_workers=16"
A=runs/vocheck; mkdir -p $A
{ nvidia-smi -L; date -u; python3 -c "import torch; print('torch', torch.__version__)"; } > "$L/device.txt"
log() { echo "== $(date -u +%T) $*"; }
log data;  timeout 120 python3 -m bsa.cli.data $EXP $TE > "$L/data.log" 2>&1 || { tail "$L/data.log"; exit 1; }
if [ -z "${SKIP_PROBE:-}" ]; then  # the probe streams the latent cache
  log cache; timeout 120 python3 -m bsa.cli.cache $EXP $TE > "$L/cache.log" 2>&1 || { tail "$L/cache.log"; exit 1; }
fi
log vocoder
timeout $(python3 -c "print(int(60 * ${MINUTES:-3.5}) + 120)") python3 -m bsa.cli.train vocoder $EXP $TE paths.output_root=$A/ck train.vocoder.out=$A/vocoder \
  train.vocoder.max_clips=${VOC_CLIPS:-6000} train.vocoder.max_minutes=${MINUTES:-3.5} train.vocoder.steps=100000 \
  train.vocoder.batch_size=64 trainer.log_every_n_steps=100 ${VOC_ARGS:-} > "$L/vocoder.log" 2>&1
grep -v '^\s*$' "$L/vocoder.log" | tail -n 2
log "evaluate the shipped teacher @200 with Griffin-Lim and with the vocoder"
E="eval.num_clips=1000 eval.batch_size=250 eval.steps=200 eval.baselines=true"
[ -z "${SKIP_GL:-}" ] && timeout 170 python3 -m bsa.cli.evaluate $EXP $TE $E models.vocoder=griffin-lim eval.out=$A/eval_gl > "$L/eval_gl.log" 2>&1 &
[ -d $A/vocoder ] && timeout 170 python3 -m bsa.cli.evaluate $EXP $TE $E models.vocoder=$A/vocoder eval.out=$A/eval_hifi > "$L/eval_hifi.log" 2>&1 &
wait
if [ -z "${SKIP_PROBE:-}" ]; then
  log "teacher throughput probe"
  timeout 150 python3 experiments/gpu/teacher_throughput.py $EXP $TE train.teacher.batch_size=256 > "$L/throughput.json" 2> "$L/throughput.log"
fi
log done
mkdir -p "$L/m"; for d in $A/eval_*; do [ -f $d/metrics.json ] && cp $d/metrics.json "$L/m/$(basename $d).json"; done
[ -f $A/vocoder/training.json ] && cp $A/vocoder/training.json "$L/m/vocoder.training.json"
tar czf "$OUT/logs.tgz" -C "$L" .
if [ -d $A/vocoder ]; then
  python3 - <<'PY'
from pathlib import Path
from safetensors.torch import load_file, save_file
for f in Path("runs/vocheck/vocoder").glob("*.safetensors"):
    save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(f).items()}, f, metadata={"format": "pt"})
PY
  tar czf "$OUT/vocoder.tgz" -C $A vocoder
fi
ls -la "$OUT"
