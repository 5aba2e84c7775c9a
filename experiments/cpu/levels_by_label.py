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

from evaluation_pair import EvaluationPair, pair_arguments

from bsa.report.fidelity import interval_cell, score_by_label

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
    args = pair_arguments(__doc__.split("\n\n")[0]).parse_args()
    pair = EvaluationPair(args)
    labels = pair.labels(tuple(a for a, _ in SPLITS))
    levels = {
        attribute: score_by_label(
            pair.model["per_clip"], pair.reference["per_clip"], labels[attribute], score
        )
        for attribute, score in SPLITS
    }
    pair.write({"levels": levels}, format_levels)


if __name__ == "__main__":
    main()
