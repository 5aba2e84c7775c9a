"""Issue "Students that keep the teacher's quality", where the gain sits: the students are right
more often than their teacher on quiet captions, yet their quiet clips are on average as loud as
the teacher's. What does the loudness head hear? Two parts, on a CPU in about a minute:
1. The head against level: the embedded set's real test clips (the first N, as the evaluations),
   scaled by each of GAINS dB, through the shipped evaluator — the share of each caption label the
   head hears as "loud", beside the clips' median RMS level. A level detector flips with the gain.
2. Which quiet clips the model fixes: two `bsa evaluate` outputs on the same captions and noise
   (their per_clip.json, e.g. a student and the teacher at 25 steps), the quiet captions grouped by
   which of the two the loudness head gets right, with each group's RMS levels (medians, the mean of the two middle values for an even count) and the
   level difference model − reference paired clip by clip (95 % bootstrap over the group's clips).
    python experiments/cpu/loudness_head.py MODEL_EVAL REFERENCE_EVAL --out DIR \\
        [--names MODEL REFERENCE] [--data-root data/embedded] [--data-seed 0] [--gains -12 -6 0 6 12]
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path

import torch

from bsa.audio import load_clip
from bsa.data.embedded import caption_labels
from bsa.metrics.embedded import EmbeddedBackbone
from bsa.metrics.paired import bootstrap_mean_ci
from bsa.metrics.scores import clip_levels
from bsa.models.assets import resolve_model_path
from bsa.models.evaluator import AudioEvaluator
from bsa.report.fidelity import interval_cell
from bsa.report.records import write_summary

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


GROUPS = {  # (reference right, model right) on a quiet caption
    "reference wrong, model right": (0, 1),
    "both right": (1, 1),
    "reference right, model wrong": (1, 0),
    "both wrong": (0, 0),
}


def quiet_clips_by_outcome(model: dict, reference: dict, loudness: list[str]) -> dict:
    """Part 2: per outcome group of the quiet captions, clip count, median level of each model, and
    the paired level difference model − reference with its interval (None below 2 clips)."""
    out = {}
    for group, (ref_ok, model_ok) in GROUPS.items():
        idx = [
            i
            for i, label in enumerate(loudness)
            if label == "quiet"
            and reference["acc_loudness"][i] == ref_ok
            and model["acc_loudness"][i] == model_ok
        ]
        a = torch.tensor([model["level_db"][i] for i in idx], dtype=torch.float64)
        b = torch.tensor([reference["level_db"][i] for i in idx], dtype=torch.float64)
        delta = None
        if len(idx) >= 2:
            mean, lo, hi = bootstrap_mean_ci(a - b)
            delta = {"mean": mean, "lo": lo, "hi": hi}
        out[group] = {
            "clips": len(idx),
            "reference_level_db": float(b.quantile(0.5)) if idx else None,
            "model_level_db": float(a.quantile(0.5)) if idx else None,
            "delta_db": delta,
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
        f"| quiet captions: loudness head | clips | {s['reference']} level (dBFS) | {s['model']} level (dBFS) | Δ [95 %] |",
        "|---|---|---|---|---|",
    ]
    for group, r in s["quiet_clips_by_outcome"].items():
        fmt = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
        delta = interval_cell(r["delta_db"], "{:+.1f}") if r["delta_db"] else "–"
        lines.append(
            f"| {group} | {r['clips']} | {fmt(r['reference_level_db'])} | {fmt(r['model_level_db'])} | {delta} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("reference", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--names", nargs=2, metavar=("MODEL", "REFERENCE"))
    ap.add_argument("--data-root", type=Path, default=Path("data/embedded"))
    ap.add_argument("--data-seed", type=int, default=0, help="data.seed of the evaluated embedded set")
    ap.add_argument("--gains", type=float, nargs="+", default=[-12.0, -6.0, 0.0, 6.0, 12.0])
    args = ap.parse_args()
    model, reference = (json.loads((d / "per_clip.json").read_text()) for d in (args.model, args.reference))
    clips = min(model["protocol"]["num_clips"], reference["protocol"]["num_clips"])
    loudness = caption_labels(args.data_seed, "test", clips, ("loudness",))["loudness"]
    rows = list(csv.DictReader(open(args.data_root / "test.csv")))[:clips]
    if [r["loudness"] for r in rows] != loudness:
        sys.exit(
            f"{args.data_root / 'test.csv'}: not the first {clips} test clips of data seed {args.data_seed}"
        )
    summary = {
        "heard_loud_by_gain": heard_loud_by_gain(args.data_root, rows, args.gains),
        "quiet_clips_by_outcome": quiet_clips_by_outcome(model["per_clip"], reference["per_clip"], loudness),
        "model": args.names[0] if args.names else model["protocol"]["model"],
        "reference": args.names[1] if args.names else reference["protocol"]["model"],
        "protocols": {"model": model["protocol"], "reference": reference["protocol"]},
        "captions": clips,
        "device": "CPU",
    }
    print(write_summary(str(args.out), summary, format_summary, command="python " + shlex.join(sys.argv)))


if __name__ == "__main__":
    main()
