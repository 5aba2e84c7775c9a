#!/usr/bin/env bash
# What a device call carries must stay under 64 MiB: the tracked tree (~40 MiB, 12 of them results/),
# the text embeddings (.carry, ~12 MiB), the wheels (.whl, ~14 MiB) and a run's resume state
# (.resume, ~13 MiB each) made 80 MiB on 2026-11-29, and the call that was to resume a run on a fresh
# machine was refused. Before such a call:
#   bash experiments/gpu/travel.sh light   # results/ out of the working tree (a sparse checkout; the
#                                          # index keeps it), .whl down to the wheels the embedded path
#                                          # imports (the others wait in .whl-real/), the size printed
#   bash experiments/gpu/travel.sh home    # everything back (before tests, commits of results, reports)
# Either prints what would travel with CARRY (default ".whl .carry .resume") and fails above 64 MiB.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
EMBEDDED_WHEELS="diffusers importlib_metadata omegaconf soundfile cffi pycparser"  # bsa's imports beyond the image's
case "${1:-}" in
  light)
    git sparse-checkout set --no-cone '/*' '!/results/'
    mkdir -p .whl-real
    for w in .whl/*.whl; do
      [ -e "$w" ] || continue
      name=$(basename "$w"); name=${name%%-*}
      [[ " $EMBEDDED_WHEELS " == *" $name "* ]] || mv "$w" .whl-real/
    done ;;
  home)
    git sparse-checkout disable
    [ -d .whl-real ] && { mv .whl-real/*.whl .whl/ 2>/dev/null || true; rmdir .whl-real; } ;;
  *) echo "usage: bash experiments/gpu/travel.sh light|home" >&2; exit 2 ;;
esac
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
carried=0
for c in ${CARRY:-.whl .carry .resume}; do
  [ -e "$c" ] && carried=$(( carried + $(du -sb "$c" | cut -f1) ))
done
total=$(( tree + carried )); limit=$(( 64 * 1024 * 1024 ))
echo "travels: working tree $(( tree >> 20 )) MiB + carry ($( echo ${CARRY:-.whl .carry .resume})) $(( carried >> 20 )) MiB = $(( total >> 20 )) MiB of 64"
[ $total -le $limit ] || { echo "over the device call's 64 MiB: carry less" >&2; exit 1; }
