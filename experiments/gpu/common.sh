# Sourced by every device-machine script: $OUT absolute (what comes back), the carried wheels
# installed into /tmp/site once (the machine has no network; .whl is made by
# `WITHOUT_WANDB=1 bash ../shared/device/wheels.sh .whl importlib_metadata`), offline hubs.
OUT=${OUT:-runs/gpu}; mkdir -p "$OUT"; export OUT=$(cd "$OUT" && pwd)
if [ -d .whl ]; then  # once per machine, under a lock: two scripts of one call may source this together
  ( flock 9; [ -f /tmp/site/.installed ] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl && touch /tmp/site/.installed; } ) 9> /tmp/site.lock || exit 1
  export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-}
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 WANDB_MODE=offline
# the embedded-gpu data every job reads: 16000 training clips, EVAL_CLIPS (1000) test captions, their
# text embeddings carried in .carry (the machine cannot hold the text encoder)
GPU_DATA="data.train_clips=16000 data.test_clips=${EVAL_CLIPS:-1000} data.num_workers=16 models.text_encoder=precomputed:.carry/text_embeddings.pt"
