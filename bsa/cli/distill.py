"""``bsa distill experiments/embedded-cpu.yaml distill.target_steps=25``

Distil the teacher (distill.teacher_steps with classifier-free guidance) down to target_steps:
stage 0 folds the guidance into a w-conditioned student (distill.guided_stage), then each stage
halves the step count. Running the same command again continues an interrupted run. Exit codes:
0 finished, 1 a stage diverged, 2 bad config or a run folder made with other settings, 3 stopped
by distill.stop_after (run again to continue).
"""

from __future__ import annotations

import argparse
import sys
import time

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig, ConfigError


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.distill import (
        EXIT_UNFINISHED,
        StageDiverged,
        describe,
        run_distillation,
        write_summary,
    )
    from bsa.experiment.population import run_population
    from bsa.experiment.runs import RunMismatchError, launched_as_global_zero

    print(describe(cfg), flush=True)
    if args.dry_run:
        return 0
    start = time.time()
    try:  # distill.population: one run per weighting, trained together
        runs = run_population(cfg) if cfg.distill.population else [(cfg, run_distillation(cfg))]
    except (RunMismatchError, ConfigError) as e:
        print(f"bsa distill: {e}", file=sys.stderr)
        return 2
    except StageDiverged as e:
        print(f"bsa distill: {e}", file=sys.stderr)
        return 1
    if not all(result.finished for _, result in runs):
        return EXIT_UNFINISHED
    if launched_as_global_zero():  # under DDP every rank trains; one summarises
        for run_cfg, result in runs:
            print("\n" + write_summary(run_cfg, result, time.time() - start))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa distill", __doc__.strip().splitlines()[2])
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
