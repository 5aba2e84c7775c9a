#!/usr/bin/env bash
# What a device call carries must stay under 64 MiB: the tracked tree (~40 MiB, 12 of them results/),
# the text embeddings (.carry, ~12 MiB), the wheels (.whl, ~14 MiB) and a run's resume state
# (.resume, ~13 MiB each) made 80 MiB on 2026-11-29, and the call that was to resume a run on a fresh
# machine was refused. Before such a call:
#   bash experiments/gpu/travel.sh light   # results/ out of the working tree (a sparse checkout; the
#                                          # index keeps it), .whl down to the wheels the embedded path
#                                          # imports (the others wait in .whl-real/), the size printed
#   bash experiments/gpu/travel.sh home    # everything back (before tests, commits of results, reports)
# Both print what would travel with CARRY (default ".whl .carry .resume"); light fails above 64 MiB.
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
# what travels: the files of the working tree (tracked and not ignored) and the carried paths
python3 - "${1}" ${CARRY:-.whl .carry .resume} <<'PY'
import os, subprocess, sys
from pathlib import Path

def size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0

listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                        capture_output=True, check=True).stdout.split(b"\0")
tree = sum(size(Path(os.fsdecode(f))) for f in listed if f)  # a file out of the sparse checkout: 0
carry = sum(size(Path(c)) for c in sys.argv[2:])
mib = lambda n: n / 2**20
print(f"travels: working tree {mib(tree):.1f} MiB + carry ({' '.join(sys.argv[2:])}) {mib(carry):.1f} MiB"
      f" = {mib(tree + carry):.1f} MiB of 64")
if sys.argv[1] == "light" and tree + carry > 64 * 2**20:
    sys.exit("over the device call's 64 MiB: carry less (CARRY names what the call carries)")
PY
