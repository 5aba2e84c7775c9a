"""Issue "Students that keep the teacher's quality", where the gain sits: the students are right
more often than their teacher on quiet captions and on sounds in silence — are their quiet clips
quieter, their silences deeper? Two `bsa evaluate` outputs on the same captions and noise (their
per_clip.json), e.g. a student and the teacher at the same step count: each clip's RMS level per
loudness label and its noise floor per background label, model − reference paired clip by clip.
    python experiments/cpu/levels_by_label.py MODEL_EVAL REFERENCE_EVAL --out DIR [--data-seed 0]
The captions' labels are those of the embedded set drawn with --data-seed (the evaluations' data.seed;
per_clip.json does not record it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bsa.data.embedded import caption_labels
from bsa.report.fidelity import interval_cell, score_by_label
from bsa.report.records import write_summary

# (caption attribute, per-clip score read against it)
SPLITS = (("loudness", "level_db"), ("background", "noise_floor_db"))


def format_levels(summary: dict) -> str:
    lines = [
        f"| attribute | label | clips | score | {summary['reference']} (dBFS) | {summary['model']} (dBFS) | Δ [95 %] |",
        "|---|---|---|---|---|---|---|",
    ]
    for (attribute, score), by_label in zip(SPLITS, summary["levels"].values(), strict=True):
        for label, r in by_label.items():
            lines.append(
                f"| {attribute} | {label} | {r['clips']} | {score} | {r['reference']:.1f} | {r['model']:.1f} | "
                f"{interval_cell(r['delta'], '{:+.1f}')} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("reference", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--data-seed", type=int, default=0, help="data.seed of the evaluated embedded set (default 0)"
    )
    ap.add_argument(
        "--names", nargs=2, metavar=("MODEL", "REFERENCE"), help="column names (default: the models' paths)"
    )
    args = ap.parse_args()
    model, reference = (json.loads((d / "per_clip.json").read_text()) for d in (args.model, args.reference))
    clips = min(model["protocol"]["num_clips"], reference["protocol"]["num_clips"])
    labels = caption_labels(args.data_seed, "test", clips, tuple(a for a, _ in SPLITS))
    levels = {
        attribute: score_by_label(model["per_clip"], reference["per_clip"], labels[attribute], score)
        for attribute, score in SPLITS
    }
    summary = {
        "levels": levels,
        "model": args.names[0] if args.names else model["protocol"]["model"],
        "reference": args.names[1] if args.names else reference["protocol"]["model"],
        "protocols": {"model": model["protocol"], "reference": reference["protocol"]},
        "captions": clips,
        "device": "CPU",
    }
    print(write_summary(str(args.out), summary, format_levels, command="python " + shlex.join(sys.argv)))


if __name__ == "__main__":
    main()
