"""``bsa compare experiments/embedded-gpu.yaml distill.target_steps=25 compare.seeds=[0,1,2]``

Compare loss weightings: for each seed one shared guided stage, then one progressive distillation
per weighting from it (separate processes, compare.parallel at once); then results.md and the
dashboard. Running the same command again skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig, split_items


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.compare import compare_dir, compare_id, planned_runs, run_comparison

    files, overrides = split_items(args.items)
    print(f"comparison {compare_id(cfg)} → {compare_dir(cfg)}")
    for i, wave in enumerate(planned_runs(cfg, overrides)):
        print(f"  wave {i + 1}: " + ", ".join(_described(r) for r in wave))
    if args.dry_run:
        return 0
    _, failed = run_comparison(cfg, files, overrides)
    if failed:
        print(
            f"bsa compare: runs not done: {failed}; run the same command again (finished runs are kept)",
            file=sys.stderr,
        )
        return 1
    return 0


def _described(run: dict) -> str:
    """A run's name; a population's with its members' runs."""
    members = run.get("members")
    return run["name"] + (f" ({len(members)} students: {', '.join(members)})" if members else "")


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa compare", __doc__.strip().splitlines()[2])
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
