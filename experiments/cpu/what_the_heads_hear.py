"""Issue "Students that keep the teacher's quality", where the gain sits: the students are right
more often than their teacher on quiet captions and on sounds in silence, yet their quiet clips are
on average as loud as the teacher's. What do the loudness and background heads hear? Two parts, on
a CPU in about a minute:
1. The loudness head against level: the embedded set's real test clips (the first N, as the
   evaluations), scaled by each of GAINS dB, through the shipped evaluator — the share of each
   caption label the head hears as "loud", beside the clips' median RMS level. A level detector
   flips with the gain.
2. Which clips the model fixes: two `bsa evaluate` outputs on the same captions and noise (their
   per_clip.json, e.g. a student and the teacher at 25 steps); the quiet captions grouped by which
   of the two the loudness head gets right, with each group's RMS levels, and the captions asking
   for silence and for noise grouped by the background head, with each group's noise floors
   (medians, the mean of the two middle values for an even count), and the difference
   model − reference paired clip by clip (95 % bootstrap over the group's clips).
    python experiments/cpu/what_the_heads_hear.py MODEL_EVAL REFERENCE_EVAL --out DIR \\
        [--names MODEL REFERENCE] [--data-root data/embedded] [--data-seed 0] [--gains -12 -6 0 6 12]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch
from evaluation_pair import EvaluationPair, pair_arguments

from bsa.audio import load_clip
from bsa.metrics.embedded import EmbeddedBackbone
from bsa.metrics.paired import bootstrap_mean_ci
from bsa.metrics.scores import clip_levels
from bsa.models.assets import resolve_model_path
from bsa.models.evaluator import AudioEvaluator
from bsa.report.fidelity import interval_cell

SAMPLE_RATE, SECONDS = 16000, 2.56


def heard_loud_by_gain(data_root: Path, rows: list[dict], gains: list[float]) -> dict:
    """Part 1: {gain: {label: {"clips", "heard_loud", "median_level_db"}}} over the real test clips
    of ``rows`` (test.csv rows; unclipped scaling: the head's input, not a playable file)."""
    n = int(SAMPLE_RATE * SECONDS)
    waves = torch.stack(
        [
            load_clip(data_root / "audio" / "test" / f"{r['youtube_id']}.wav", SAMPLE_RATE, n).wave
            for r in rows
        ]
    )
    evaluator = AudioEvaluator.from_pretrained(
        resolve_model_path("embedded:evaluator"), low_cpu_mem_usage=False
    )
    names = evaluator.config.labels["loudness"]
    backbone = EmbeddedBackbone(evaluator.eval())
    labels = [r["loudness"] for r in rows]
    out = {}
    for gain in gains:
        scaled = waves * 10 ** (gain / 20)
        with torch.no_grad():
            heard = backbone.features(scaled).logits["loudness"].argmax(-1)
        level = clip_levels(scaled)["level_db"]
        out[f"{gain:+g}"] = {
            label: {
                "clips": len(idx),
                "heard_loud": float(sum(names[heard[i]] == "loud" for i in idx) / len(idx)),
                "median_level_db": float(level[idx].quantile(0.5)),
            }
            for label in ("quiet", "loud")
            for idx in [[i for i, v in enumerate(labels) if v == label]]
        }
    return out


GROUPS = {  # (reference right, model right) in the head of the caption's attribute
    "reference wrong, model right": (0, 1),
    "both right": (1, 1),
    "reference right, model wrong": (1, 0),
    "both wrong": (0, 0),
}
MIN_CLIPS_FOR_INTERVAL = 5  # a bootstrap over fewer clips gives no 95 % interval worth printing
# (head, caption label, per-clip score read against it): what part 2 groups
CASES = (
    ("loudness", "quiet", "level_db"),
    ("background", "silence", "noise_floor_db"),
    ("background", "noise", "noise_floor_db"),
)


def clips_by_outcome(
    model: dict, reference: dict, labels: list[str], head: str, label: str, score: str
) -> dict:
    """Part 2: the clips whose caption has ``label`` (``labels``: the attribute's label per clip), per
    outcome group of ``head``: clip count, the median ``score`` of each model, and the paired
    difference model − reference with its interval (None below 2 clips)."""
    out = {}
    for group, (ref_ok, model_ok) in GROUPS.items():
        idx = [
            i
            for i, v in enumerate(labels)
            if v == label and reference[f"acc_{head}"][i] == ref_ok and model[f"acc_{head}"][i] == model_ok
        ]
        a = torch.tensor([model[score][i] for i in idx], dtype=torch.float64)
        b = torch.tensor([reference[score][i] for i in idx], dtype=torch.float64)
        delta = None  # no clip: none; fewer than MIN_CLIPS_FOR_INTERVAL: the mean alone
        if len(idx) >= MIN_CLIPS_FOR_INTERVAL:
            mean, lo, hi = bootstrap_mean_ci(a - b)
            delta = {"mean": mean, "lo": lo, "hi": hi}
        elif idx:
            delta = {"mean": float((a - b).mean())}
        out[group] = {
            "clips": len(idx),
            "reference": float(b.quantile(0.5)) if idx else None,
            "model": float(a.quantile(0.5)) if idx else None,
            "delta": delta,
        }
    return out


def format_summary(s: dict) -> str:
    gains = list(s["heard_loud_by_gain"])
    lines = [
        "| caption label | clips | " + " | ".join(f"{g} dB: heard loud (median level)" for g in gains) + " |",
        "|---|---|" + "---|" * len(gains),
    ]
    for label in ("quiet", "loud"):
        cells = [s["heard_loud_by_gain"][g][label] for g in gains]
        lines.append(
            f"| {label} (real clips) | {cells[0]['clips']} | "
            + " | ".join(f"{c['heard_loud']:.3f} ({c['median_level_db']:.1f} dBFS)" for c in cells)
            + " |"
        )
    lines += [
        "",
        f"| head | caption label | score | head right on | clips | {s['reference']} (dBFS) | {s['model']} (dBFS) | Δ [95 %] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
    for case, groups in s["by_outcome"].items():
        head, label, score = case.split("/")
        for group, r in groups.items():
            delta = interval_cell(r["delta"], "{:+.1f}")
            lines.append(
                f"| {head} | {label} | {score} | {group} | {r['clips']} | {fmt(r['reference'])} | {fmt(r['model'])} | {delta} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = pair_arguments(__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=Path("data/embedded"))
    ap.add_argument("--gains", type=float, nargs="+", default=[-12.0, -6.0, 0.0, 6.0, 12.0])
    args = ap.parse_args()
    pair = EvaluationPair(args)
    labels = pair.labels(("loudness", "background"))
    rows = list(csv.DictReader(open(args.data_root / "test.csv")))[: pair.clips]
    if [r["loudness"] for r in rows] != labels["loudness"]:
        sys.exit(
            f"{args.data_root / 'test.csv'}: not the first {pair.clips} test clips of data seed {args.data_seed}"
        )
    figures = {
        "heard_loud_by_gain": heard_loud_by_gain(args.data_root, rows, args.gains),
        "by_outcome": {
            f"{head}/{label}/{score}": clips_by_outcome(
                pair.model["per_clip"], pair.reference["per_clip"], labels[head], head, label, score
            )
            for head, label, score in CASES
        },
    }
    pair.write(figures, format_summary)


if __name__ == "__main__":
    main()
