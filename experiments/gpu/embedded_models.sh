#!/usr/bin/env bash
# Train the shipped embedded models on a GPU machine (the device tool's H100), from scratch, in
# the order given (each step is one `bsa` command with its own time limit):
#   bash experiments/gpu/embedded_models.sh vae evaluator          # data → VAE → evaluator
#   bash experiments/gpu/embedded_models.sh cache teacher eval     # data → cache → teacher → evaluation
#   STEPS=25 bash experiments/gpu/embedded_models.sh cache distill # data → cache → `make distill STEPS=25 PRESET=embedded-gpu`
#   bash experiments/gpu/embedded_models.sh cache scaling           # the same stages on 1 GPU and on 2 (DDP)
#   STEPS=1 SEEDS=0,1,2 bash experiments/gpu/embedded_models.sh cache compare  # `make compare` (COMPARE_ARGS, LIMIT)
#   bash experiments/gpu/embedded_models.sh cache compile          # 3 stages eager, then with trainer.compile=default
#   BENCH_ARGS="--models 185m" bash experiments/gpu/embedded_models.sh cache bench  # `bsa bench` training + loading
# Carried: .whl (WITHOUT_WANDB=1 bash ../shared/device/wheels.sh .whl importlib_metadata) and
# .carry/text_embeddings.pt (MiniLM caption embeddings made on the CPU machine, see
# `make text-embeddings`: the package is too large to carry). Logs, assets.tgz and metrics → $OUT.
set -uo pipefail
source "$(dirname "$0")/common.sh"
EXP=${EXP:-experiments/embedded-gpu.yaml}
TE=models.text_encoder=precomputed:.carry/text_embeddings.pt
nvidia-smi -L > "$OUT/device.txt"; date -u >> "$OUT/device.txt"
run() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
        echo "rc=$rc"; grep -v '^\s*$' "$OUT/$name.log" | tail -n 12; return $rc; }
run data 120 python3 -m bsa.cli.data $EXP data.num_workers=16 || exit 1
A=runs/assets  # git-ignored, so a warm machine keeps it between calls; copied into bsa/assets/ here
trained=()
for step in "$@"; do
  case $step in
    vae) run vae 260 python3 -m bsa.cli.train vae $EXP $TE train.vae.out=$A/vae && trained+=(vae) ;;
    evaluator) run evaluator 150 python3 -m bsa.cli.train evaluator $EXP $TE train.evaluator.out=$A/evaluator && trained+=(evaluator) ;;
    cache) run cache 150 python3 -m bsa.cli.cache $EXP $TE || exit 1 ;;
    teacher) run teacher 450 python3 -m bsa.cli.train teacher $EXP $TE train.teacher.out=$A/teacher && trained+=(teacher) ;;
    eval) ev=(); [ -d $A/evaluator ] && ev=(models.evaluator=$A/evaluator)
          run eval 150 python3 -m bsa.cli.evaluate $EXP $TE eval.out=$OUT/eval eval.model=$A/teacher "${ev[@]}" \
            && cp "$OUT/eval/metrics.json" "$OUT/metrics.json" ;;
    distill) run distill 470 python3 -m bsa.cli.distill $EXP $TE distill.target_steps=${STEPS:-25} paths.output_root=runs/distill \
               ${DISTILL_ARGS:-} && cp runs/distill/*/summary.md runs/distill/*/summary.json "$OUT"/ \
             && tar czf "$OUT/distill_logs.tgz" runs/distill/*/logs runs/distill/*/config.yaml ;;
    compare) C=runs/cmp; OMP_NUM_THREADS=1 run compare ${LIMIT:-450} python3 -m bsa.cli.compare $EXP $TE \
               distill.target_steps=${STEPS:-25} "compare.seeds=[${SEEDS:-0}]" paths.output_root=$C ${COMPARE_ARGS:-}
             # everything but the model weights (eval records, logs, clips, results, dashboard): one archive per seed
             cd $C/compare/*/ && for seed in ${SEEDS//,/ }; do
               tar czf "$OUT/cmp_seed$seed.tgz" --exclude='*.safetensors' --exclude='*.ckpt' *-seed$seed; done
             tar czf "$OUT/cmp_meta.tgz" logs results.* 2>/dev/null; cd "$OLDPWD"; true ;;
    scaling) # same global batch (128) and steps: 1 GPU × 128 against 2 GPUs × 64 (Lightning DDP)
             S="distill.target_steps=100 distill.steps_per_stage=300 distill.guided_steps=300 distill.eval_clips=256 eval.showcase=2 paths.output_root=runs/scaling ${SCALING_ARGS:-}"
             run one_gpu 230 python3 -m bsa.cli.distill $EXP $TE $S trainer.devices=1 distill.batch_size=128 distill.run_name=one_gpu
             run two_gpus 260 python3 -m bsa.cli.distill $EXP $TE $S trainer.devices=2 distill.batch_size=64 distill.run_name=two_gpus
             tar czf "$OUT/scaling.tgz" --exclude='*.safetensors' --exclude='*.ckpt' --exclude=samples -C runs/scaling one_gpu two_gpus; true ;;
    compile) # the same stages eager and with trainer.compile=default, one after the other (compilation included)
             S="distill.target_steps=50 distill.steps_per_stage=300 distill.guided_steps=300 distill.eval_clips=256 eval.showcase=2 paths.output_root=runs/compile ${COMPILE_ARGS:-}"
             run eager 200 python3 -m bsa.cli.distill $EXP $TE $S trainer.compile=off distill.run_name=eager
             run compiled 280 python3 -m bsa.cli.distill $EXP $TE $S trainer.compile=default distill.run_name=compiled
             tar czf "$OUT/compile.tgz" --exclude='*.safetensors' --exclude='*.ckpt' --exclude=samples -C runs/compile eager compiled; true ;;
    bench) run bench_training ${LIMIT:-280} python3 -m bsa.cli.bench --what training ${BENCH_ARGS:-} --out "$OUT/bench_training.json"
           run bench_loading 60 python3 -m bsa.cli.bench --what loading --config $EXP $TE --out "$OUT/bench_loading.json"; true ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
for m in "${trained[@]}"; do tar czf "$OUT/$m.tgz" -C $A "$m"; done  # one file each: 16 MB limit per file
ls -la "$OUT"
