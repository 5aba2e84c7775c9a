#!/usr/bin/env bash
# Where the weighting study's population step spends its time, and what cuts it (issue "A weighting
# study…": its blocks must fit 20 min). population_kernels.py: the step's calls timed apart, ways of
# running them side by side, the kernels by time; population_step.py: the whole step as Lightning
# trains it, with and without cudnn.benchmark; before them the population's GPU tests. Everything
# in $OUT/population_speed.tar.gz.
#   bash experiments/gpu/population_speed.sh
set -uo pipefail
source "$(dirname "$0")/common.sh"
L=runs/population-speed; rm -rf $L; mkdir -p $L
{ nvidia-smi -L; date -u; python3 -c "import torch; print('torch', torch.__version__)"; } > $L/device.txt
run() { echo "== $(date -u +%T) $*" | tee -a $L/commands.txt; timeout "$@" >> $L/log.txt 2>&1; echo "exit $?" >> $L/commands.txt; }
# the GPU tests of the population first (its GroupNorm operator under autocast, its graphed training)
run 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_population.py tests/test_graphs.py
run 150 python3 experiments/gpu/population_kernels.py --members 17 --variants "${EAGER:-vmap,vmap+benchmark+profile,vmap+benchmark+cl,single+benchmark}" --out $L/population_kernels.jsonl
run 120 python3 experiments/gpu/population_step.py --members ${STEP_MEMBERS:-17} --graphs --cudnn-benchmark --out $L/population_step.jsonl
[ -n "${COMPILE_S:-}" ] && run $COMPILE_S python3 experiments/gpu/population_kernels.py --members 17 --variants compiled+benchmark --out $L/population_kernels.jsonl
tar czf $OUT/population_speed.tar.gz -C $L .
