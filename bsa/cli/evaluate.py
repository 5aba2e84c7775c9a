"""``bsa evaluate experiments/embedded-gpu.yaml eval.steps=200 [eval.model=FOLDER]``

Score a model (eval.model: the teacher by default, or any exported stage folder) at eval.steps:
FAD against the real clips and the teacher, IS, CLAP score, attribute accuracy; with eval.baselines
also the real clips (ceiling), their reconstruction and shuffled captions (floor). Writes
eval.out/metrics.json, the model's per-clip scores to eval.out/per_clip.json and appends to
eval.out/metrics.csv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.evaluate import evaluate_model, model_in_use, write_evaluation
    from bsa.report.tables import format_table

    e = cfg.eval
    print(
        f"evaluating {model_in_use(cfg)} at {e.steps} steps, guidance {e.guidance_scale}, on {e.num_clips} "
        f"{e.split} captions of {Path(cfg.data.root)}"
    )
    if args.dry_run:
        return 0
    protocol, results, per_clip = evaluate_model(cfg, command=" ".join(["bsa evaluate", *args.items]))
    write_evaluation(e.out, protocol, results, per_clip)
    print(format_table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_with_config(
        config_parser("bsa evaluate", __doc__.strip().splitlines()[0]).parse_args(argv), _main
    )


if __name__ == "__main__":
    sys.exit(main())
