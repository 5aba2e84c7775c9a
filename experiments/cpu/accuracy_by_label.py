"""Issue "Students that keep the teacher's quality", where the gain sits: the students beat their
teacher in the loudness and background heads — on which captions? Each head's accuracy per caption
label (loud / quiet; hum / noise / silence), the teacher's and the students' per step count, from
the committed records of an embedded-set run (its per-clip head correctness, kept since
2026-11-29) and the set's labels (``bsa.data.embedded.caption_labels``, from the run's data seed). No training, no audio: seconds on a CPU.
    python experiments/cpu/accuracy_by_label.py results/fidelity/vocoder-2026-11-29/runs/s0 \\
        --out results/fidelity/vocoder-2026-11-29/by-label
--other NAME=FOLDER adds a column: a `bsa evaluate` output (its per_clip.json) on the same
captions and noise, e.g. the teacher sampled with fewer DDIM steps; the table then keeps to the
clips every column has.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bsa.config import load_config
from bsa.data.embedded import caption_labels
from bsa.report.fidelity import accuracy_by_label, format_accuracy_by_label
from bsa.report.records import final_records, write_summary

HEADS = ("loudness", "background")
STEPS = ("200 guided", "25", "4", "1")


def set_labels(run: Path, clips: int) -> dict[str, list[str]]:
    """Per head, the label of each of the run's evaluation clips (the first ``clips`` of the test split)."""
    return caption_labels(load_config([str(run / "config.yaml")]).data.seed, "test", clips, HEADS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--other", action="append", default=[], metavar="NAME=FOLDER")
    args = ap.parse_args()
    runs = [final_records(run / "eval.jsonl") for run in args.runs]
    teacher = next(r for r in runs[0] if r["mode"] == "teacher")
    others, protocols = {}, {}
    for spec in args.other:
        name, folder = spec.split("=", 1)
        evaluation = json.loads((Path(folder) / "per_clip.json").read_text())
        others[name], protocols[name] = evaluation["per_clip"], evaluation["protocol"]
    clips = min([teacher["protocol"]["num_clips"], *(p["num_clips"] for p in protocols.values())])
    table = accuracy_by_label(runs, set_labels(args.runs[0], clips), others)
    summary = {
        "accuracy_by_label": table,
        "runs": [str(r) for r in args.runs],
        "others": protocols,
        "captions": clips,
        "device": f"CPU, from the records of {teacher['protocol'].get('device', '?')}",
    }
    print(
        write_summary(
            str(args.out),
            summary,
            lambda s: format_accuracy_by_label(s["accuracy_by_label"], (*STEPS, *others)) + "\n",
            command="python " + shlex.join(sys.argv),
        )
    )


if __name__ == "__main__":
    main()
