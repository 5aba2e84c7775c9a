#!/usr/bin/env bash
# Issue "A weighting study that can tell weightings apart" on the device machine: `bsa compare` on
# the embedded-gpu preset (the fidelity recipe: v-student, fp32, 4800-step guided stage) with the
# denoiser calls graph-replayed, the paired metrics on EVAL_CLIPS captions.
#   WEIGHTINGS='[bsa,min_snr,truncated_snr,constant,snr_plus_one]' SEEDS=0 STEPS=25 bash experiments/gpu/weighting_study.sh
# The (floor, γ) map: OVERLAY=experiments/weighting-sweep.yaml (its 17 weightings as two populations
# of 9 and 8 students, compare.population; on a machine with several GPUs bsa compare spreads them):
# a seed of the whole map at both blocks on a 2-GPU machine, 22.6 min on 2 × H200 (seed 3, 2026-11-29):
# DETACH=1 OVERLAY=experiments/weighting-sweep.yaml SEEDS=<n> STEPS=4 SCORE_STEPS=[25,4] PARALLEL=2.
# The 9 points that decide the default, a seed of both blocks in one session (24.2 min on an H200):
# DETACH=1 OVERLAY=experiments/weighting-deciding.yaml SEEDS=<n> STEPS=4 SCORE_STEPS=[25,4] PARALLEL=1.
# The grid with more steps at low noise (the issue's part 4): EXTRA=distill.grid_power=2 (the
# comparison's folder gets -grid2); the low-noise cap's 9 points on it, both blocks of a seed on a
# 2-GPU machine, 23.6 min on 2 × H200 (seed 4, 2026-11-29): DETACH=1
# OVERLAY=experiments/weighting-lownoise.yaml SEEDS=<n> STEPS=4 SCORE_STEPS=[25,4] PARALLEL=2.
# POPULATION=<n>: any block's weightings as populations of up to n students; on one GPU,
# POPULATION=17 PARALLEL=1 trains a seed's whole map as one population (one guided stage, one bsa:
# the 25-step block 23.0 min end to end on one H100, seed 5, 2026-12-07, four calls of DEADLINE_S
# 470/560/575/300 — docs/results/weighting-study.md "The 25-step block on one H100"). With POPULATION or OVERLAY only the
# stages of SCORE_STEPS are scored (distill.score_steps,
# default [STEPS]; e.g. STEPS=4 SCORE_STEPS=[25,4]: both blocks of the study in one comparison;
# SCORE_ALL=1 scores every stage). GRAPHS=false: the training calls eager
# (trainer.cuda_graphs; on by default, the populations' vmapped calls too).
# Resumable: a second call on the warm machine continues the runs (finished ones are skipped).
# The guided stage of each seed comes home as resume-guided-seed<N>.tgz (~13 MB, pack_resume.py):
# the block's other weightings can start from that same guided student in a later session (after
# restore_resume.sh, carry .resume: a guided run found there and missing here is put in place).
# DEADLINE_S bounds the call (training stops, or a detached call stops waiting, PACK_S = 100 s before
# it, and bsa study's summary is cut at it); every run's records and the comparison's results and
# dashboard come back in $OUT/study.tar.gz, the runs' kept embeddings in $OUT/embeddings.tar.part-*
# (home: cat …/embeddings.tar.part-* | tar x -C <results folder>; then bsa study <folder> --out
# <folder>/device-study, and the folder's own study with --fad-differences
# <folder>/device-study/summary.json: the paired FAD differences, computed where the embeddings are).
# DETACH=1: the comparison runs in a process session of its own (setsid), which the device tool
# leaves running when the call returns: the call waits until DEADLINE_S, packs what is there and
# leaves it training; the next call on the warm machine finds it running and waits for it again (no
# stop, no resume, no second set-up of the population at every call), or, where none runs (a fresh
# machine), starts it anew, resuming.
# PRESET and DATA_ARGS (default: embedded-gpu and its 16000 clips) point it elsewhere (the tests).
set -uo pipefail
T0=$(date +%s)
source "$(dirname "$0")/common.sh"
C=runs/study; L=$C/logs; mkdir -p $L
log() { echo "== $(date -u +%T) $*" | tee -a $L/phases.txt; }
{ nvidia-smi -L; date -u; python3 -c "import torch; print('torch', torch.__version__)"; } >> $L/device.txt
EXP="${PRESET:-experiments/embedded-gpu.yaml} ${OVERLAY:-}"
W=${WEIGHTINGS:-}; [ -z "${OVERLAY:-}" ] && W=${W:-[bsa,min_snr,truncated_snr,constant,snr_plus_one]}
D=${DATA_ARGS:-$GPU_DATA}
LAST=""; [ -n "${POPULATION:-}${OVERLAY:-}" ] && [ -z "${SCORE_ALL:-}" ] && LAST="distill.score_steps=${SCORE_STEPS:-[${STEPS:-25}]}"
ARGS="distill.target_steps=${STEPS:-25} compare.seeds=[${SEEDS:-0}] ${W:+compare.weightings=$W} compare.parallel=${PARALLEL:-6} distill.eval_clips=${EVAL_CLIPS:-1000} eval.batch_size=250 data.resident=true paths.output_root=$C trainer.cuda_graphs=${GRAPHS:-true} eval.cuda_graphs=true ${POPULATION:+compare.population=$POPULATION} $LAST ${EXTRA:-}"
if [ ! -f $C/data.done ]; then
  log data;  timeout 200 python3 -m bsa.cli.data $EXP $D > $L/data.log 2>&1 || { tail $L/data.log; exit 1; }
  log cache; timeout 200 python3 -m bsa.cli.cache $EXP $D > $L/cache.log 2>&1 || { tail $L/cache.log; exit 1; }
  touch $C/data.done
fi
# the comparison's folder, as bsa compare names it (preset, steps, grid)
CID=$(python3 -c "import sys; from bsa.config import load_config; from bsa.experiment.compare import compare_dir; print(compare_dir(load_config(sys.argv[1].split(), sys.argv[2:])))" "$EXP" $D $ARGS) || exit 1
for g in .resume/guided-seed*; do
  [ -d "$g" ] && [ ! -d "$CID/$(basename $g)" ] && { mkdir -p $CID; cp -r "$g" "$CID/"; log "restored $g"; }
done
# packing takes PACK_S of the call: on 2026-11-29 79 s after a 9-student comparison (bsa study's paired
# FAD differences ~60 s of it, slower beside a comparison still training), where 40 s were reserved and
# a call ran past the tool's limit without bringing its study back
until_deadline() { echo $(( ${DEADLINE_S:-560} - ($(date +%s) - T0) )); }
left=$(( $(until_deadline) - ${PACK_S:-100} ))
PIDF=$C/compare.pid
running() { [ -f $PIDF ] && kill -0 "$(cat $PIDF)" 2>/dev/null; }
if [ -n "${DETACH:-}" ]; then
  if running; then
    log "compare running since an earlier call (pid $(cat $PIDF)): waiting up to $left s"
  elif [ "$(cat $C/compare.rc 2>/dev/null)" = 0 ]; then
    log "compare finished in an earlier call: packing"
  else
    log "compare, detached ($left s in this call): $ARGS"
    echo "bsa compare $EXP $D $ARGS" >> $L/commands.txt
    rm -f $C/compare.rc
    # its own session: the device tool ends the call's processes, not this one; its pid is the shell's
    setsid bash -c 'echo $$ > "$1"; shift; python3 -m bsa.cli.compare "$@"; echo $? > '"$C/compare.rc" \
      _ $PIDF $EXP $D $ARGS >> $L/compare.log 2>&1 < /dev/null &
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s $PIDF ] && break; sleep 0.5; done
  fi
  end=$(( $(date +%s) + left ))
  while running && [ $(date +%s) -lt $end ]; do sleep 5; done
  if running; then log "compare runs on after this call (pid $(cat $PIDF))"; else log "compare exit $(cat $C/compare.rc 2>/dev/null || echo '?')"; fi
  ! running && [ "$(cat $C/compare.rc 2>/dev/null)" = 0 ] && FINISHED=1
  # where each run stands (its progress bar's last state), for the call's output
  for f in $C/compare/*/logs/*.log; do
    [ -f "$f" ] && log "  $(basename "$f" .log): $(tail -c 2000 "$f" | tr '\r' '\n' | grep -v '^\s*$' | tail -1 | cut -c1-160)"
  done
else
  log "compare ($left s left): $ARGS"
  echo "bsa compare $EXP $D $ARGS" >> $L/commands.txt
  timeout $left python3 -m bsa.cli.compare $EXP $D $ARGS >> $L/compare.log 2>&1
  rc=$?; log "compare exit $rc"; [ $rc = 0 ] && FINISHED=1
  pkill -f bsa.cli.distill; sleep 3   # runs still training stop here (atomic checkpoints: they resume)
fi
P=$L/pack; rm -rf $P; mkdir -p $P
for g in $C/compare/*/guided-seed*/; do  # once finished: its stage folder and evaluation record
  [ -f $g/eval.jsonl ] && [ ! -f $OUT/resume-$(basename $g).tgz ] && timeout 60 python3 experiments/gpu/pack_resume.py $OUT $g >> $L/phases.txt 2>&1
done
for r in $C/compare/*/*/; do
  n=$(basename $r); { [ "$n" = logs ] || [ "$n" = study ] || [ "$n" = dashboard ]; } && continue; mkdir -p $P/$n
  cp $r/eval.jsonl $r/profiles.jsonl $r/summary.json $r/summary.md $r/config.yaml $P/$n/ 2>/dev/null
done
# the runs' kept per-clip embeddings, in pieces (pack_embeddings.py): a study can be computed again at
# home, paired FAD differences included, whatever this call's time left for the study below
dirs=( $C/compare/*/ )
[ ${#dirs[@]} = 1 ] && timeout 60 python3 experiments/gpu/pack_embeddings.py $OUT ${dirs[0]} >> $L/phases.txt 2>&1
# the study's summary where the runs' embeddings are (paired FAD differences need them; they stay
# here), every call: a comparison the device time ends before its end still gives the stages it scored;
# a finished comparison wrote its own at its end (bsa compare: <comparison>/study/)
study_s=$(( $(until_deadline) - 10 )); [ $study_s -gt 120 ] && study_s=120
if [ "${FINISHED:-}" = 1 ] && [ ${#dirs[@]} = 1 ] && [ -f ${dirs[0]}study/summary.json ]; then
  cp -r ${dirs[0]}study $P/study; log "study: the comparison's own (${dirs[0]}study)"
elif ls $C/compare/*/*/eval.jsonl > /dev/null 2>&1 && [ $study_s -gt 0 ]; then
  log "study ($study_s s at most)"
  timeout $study_s python3 -m bsa.cli.study $C/compare/*/ --out $P/study --command "$(tail -1 $L/commands.txt)" > $L/study.log 2>&1
fi
for f in $C/compare/*/results.json $C/compare/*/results.md $C/compare/*/dashboard $C/compare/*/logs; do
  [ -e "$f" ] && cp -r $f $P/
done
tar czf $OUT/study.tar.gz -C $L .
log packed
