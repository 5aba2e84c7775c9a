"""``bsa train {vae,teacher,evaluator,vocoder} experiments/embedded-gpu.yaml [key=value ...]``

Train an embedded model from scratch and write it in diffusers' ``save_pretrained`` layout to
``train.<model>.out`` (default ``bsa/assets/<model>``), with ``training.json``. Checkpointed under
``<paths.output_root>/train-<model>/``: a killed run resumes; the model folder is replaced in one
rename at the end. ``train.stop_after_minutes`` ends an invocation early with a checkpoint
(exit 3): the same command continues.
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig

MODELS = ("vae", "teacher", "evaluator", "vocoder")


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.distill import EXIT_UNFINISHED
    from bsa.experiment.train import TrainingUnfinished, train_embedded

    print(f"training the embedded {args.model} → {getattr(cfg.train, args.model).out}")
    if args.dry_run:
        return 0
    try:
        print(f"wrote {train_embedded(cfg, args.model)}")
    except TrainingUnfinished as stop:
        print(stop)
        return EXIT_UNFINISHED
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa train", __doc__.strip().splitlines()[0], choice=("model", MODELS))
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
