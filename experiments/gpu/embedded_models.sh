#!/usr/bin/env bash
# Train the shipped embedded models on a GPU machine (the device tool's H100), from scratch:
#   bash experiments/gpu/embedded_models.sh vae-evaluator   # data → VAE → evaluator        (~6 min)
#   bash experiments/gpu/embedded_models.sh teacher         # data → cache → teacher → eval (~9 min)
# Carried: .whl (bash ../shared/device/wheels.sh .whl antlr4-python3-runtime==4.9.3, WITHOUT_WANDB=1)
# and .carry/text_embeddings.pt (MiniLM caption embeddings made on the CPU machine, whose package is
# too large to carry). Results and logs go to $OUT (default runs/gpu).
set -uo pipefail
what=${1:?vae-evaluator or teacher}
OUT=${OUT:-runs/gpu}; mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-}
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 WANDB_MODE=offline
EXP=experiments/embedded-gpu.yaml
TE=models.text_encoder=precomputed:.carry/text_embeddings.pt
nvidia-smi -L > "$OUT/device.txt"; date -u >> "$OUT/device.txt"
step() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?; echo "rc=$rc"; tail -n 25 "$OUT/$name.log"; return $rc; }
step data 180 python3 -m bsa.cli.data $EXP data.num_workers=16 || exit 1
case $what in
  vae-evaluator)
    step vae 260 python3 -m bsa.cli.train vae $EXP $TE || exit 1
    step evaluator 200 python3 -m bsa.cli.train evaluator $EXP $TE || exit 1
    tar czf "$OUT/assets.tgz" bsa/assets/vae bsa/assets/evaluator ;;
  teacher)
    step cache 150 python3 -m bsa.cli.cache $EXP $TE || exit 1
    step teacher 420 python3 -m bsa.cli.train teacher $EXP $TE || exit 1
    tar czf "$OUT/assets.tgz" bsa/assets/teacher
    step eval 150 python3 -m bsa.cli.evaluate $EXP $TE eval.out=$OUT/eval
    cp "$OUT"/eval/metrics.json "$OUT/teacher_metrics.json" 2>/dev/null ;;
esac
ls -la "$OUT"
