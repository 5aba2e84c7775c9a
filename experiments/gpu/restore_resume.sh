#!/usr/bin/env bash
# On this machine, after a device call: unpack the call's resume-<run>.tgz files into .resume/<run>
# (each replaces the run's earlier state), for the next call to carry (carry: [".whl", ".carry",
# ".resume"]); a run that reached its target is dropped from .resume (DONE="s0 s1": names) so the
# carry stays under its 64 MiB.
# The call that carries it: after `bash experiments/gpu/travel.sh light` (what travels under 64 MiB).
#   bash experiments/gpu/restore_resume.sh /work/.device/<n>
set -euo pipefail
mkdir -p .resume
for f in "$1"/resume-*.tgz; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .tgz); name=${name#resume-}
  rm -rf ".resume/$name"; tar xzf "$f" -C .resume
  echo "$name: $(du -sh ".resume/$name" | cut -f1) in .resume/$name"
done
for name in ${DONE:-}; do rm -rf ".resume/$name"; echo "$name: done, dropped from .resume"; done
du -sh .resume .whl .carry 2>/dev/null || true
