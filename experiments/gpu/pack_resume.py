"""Pack what each run needs to resume on another machine (``bsa.experiment.runs.resume_state``)
into ``<out>/resume-<run name>.tgz``, one file per run (the device tool brings back 8 files of
16 MiB at most; a 3.2 M student's state is ~13 MB). A machine lent for minutes is released between
calls when a reply comes late, and the runs on it with it; ``restore_resume.sh`` unpacks these
into ``.resume/``, which the next call carries and ``fidelity_ablation.sh`` restores from where the
machine has no such run.
    python3 experiments/gpu/pack_resume.py <out> <run folder>...
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

from bsa.experiment.runs import resume_state
from bsa.report.records import run_config


def main(out: str, *runs: str) -> None:
    for run in map(Path, runs):
        if not (run / "config.yaml").is_file():
            print(f"{run}: no run here, nothing packed")
            continue
        files = resume_state(run_config(run), run)
        target = Path(out) / f"resume-{run.name}.tgz"
        with tarfile.open(target.with_name(target.name + ".part"), "w:gz") as tar:
            for f in files:
                tar.add(run / f, arcname=str(Path(run.name) / f))
        target.with_name(target.name + ".part").rename(target)
        size = sum((run / f).stat().st_size for f in files)
        print(
            f"{run}: {len(files)} files, {size / 2**20:.1f} MiB → {target} ({target.stat().st_size / 2**20:.1f} MiB)"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
