"""``python -m bsa.cli.distill experiments/embedded-cpu.yaml distill.target_steps=25``

Progressively distil the teacher (teacher_steps, with guidance) down to target_steps.
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def describe(cfg: BsaConfig) -> str:
    d = cfg.distill
    plan = d.plan
    lines = [
        f"preset      {cfg.preset}",
        f"plan        {plan.describe()}",
        f"weighting   {d.weighting}"
        + (f" (floor={d.bsa_floor}, gamma={d.bsa_gamma})" if d.weighting == "bsa" else ""),
        f"guidance    scale {d.guidance_scale} (AudioLDM convention)"
        + (
            f"; stage 0 folds it into a w-conditioned student, w ∈ [{d.guidance_min}, {d.guidance_max}]"
            if d.guided_stage
            else "; students run CFG themselves (2 network calls per step)"
        ),
        f"per stage   {d.steps_per_stage} optimizer steps, batch {d.batch_size}, lr {d.lr}",
    ]
    for stage in plan.stages:
        lines.append(f"  stage {stage.index}: {stage.teacher_steps} → {stage.student_steps} steps")
    return "\n".join(lines)


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    print(describe(cfg))
    if args.dry_run:
        return 0
    print(
        "\nbsa: the distillation stages are not implemented yet (tracked in the distillation issue); "
        "the plan above is validated and nothing was trained."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa distill", __doc__.strip().splitlines()[2])
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
