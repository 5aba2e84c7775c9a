"""What the scripts that compare two `bsa evaluate` outputs share (levels_by_label.py,
what_the_heads_hear.py): their arguments, the two per_clip.json files read on the clips both
scored, the embedded set's caption labels of those clips, and the summary's provenance."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bsa.data.embedded import caption_labels
from bsa.report.records import write_summary


def pair_arguments(description: str) -> argparse.ArgumentParser:
    """MODEL_EVAL REFERENCE_EVAL --out DIR [--names MODEL REFERENCE] [--data-seed 0]."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("model", type=Path)
    ap.add_argument("reference", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--names", nargs=2, metavar=("MODEL", "REFERENCE"), help="column names (default: the models' paths)"
    )
    ap.add_argument(
        "--data-seed", type=int, default=0, help="data.seed of the evaluated embedded set (default 0)"
    )
    return ap


class EvaluationPair:
    """The two evaluations of ``args``: ``model``, ``reference`` (their per_clip.json), ``clips``
    (the first clips both scored) and ``labels(attributes)`` of those clips."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.model, self.reference = (
            json.loads((d / "per_clip.json").read_text()) for d in (args.model, args.reference)
        )
        self.clips = min(self.model["protocol"]["num_clips"], self.reference["protocol"]["num_clips"])

    def labels(self, attributes: tuple[str, ...]) -> dict[str, list[str]]:
        return caption_labels(self.args.data_seed, "test", self.clips, attributes)

    def write(self, figures: dict, format_summary) -> None:
        """``figures`` with the pair's names, protocols and clip count to ``--out``; prints the table."""
        names = self.args.names or (self.model["protocol"]["model"], self.reference["protocol"]["model"])
        summary = figures | {
            "model": names[0],
            "reference": names[1],
            "protocols": {"model": self.model["protocol"], "reference": self.reference["protocol"]},
            "captions": self.clips,
            "device": "CPU",
        }
        print(
            write_summary(
                str(self.args.out), summary, format_summary, command="python " + shlex.join(sys.argv)
            )
        )
