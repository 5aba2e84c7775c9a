"""``bsa generate experiments/embedded-cpu.yaml --caption "a loud siren ..." [--steps 200] [eval.model=FOLDER]``

Captions in, wav files out, with any model folder (eval.model: the teacher by default, or any
exported stage) at any step count. A guidance-distilled student takes the scale as input (one
network call per step); other models run classifier-free guidance (two).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.evaluate import generate_clips, model_in_use

    captions = list(args.caption or [])
    if args.captions_file:
        captions += [
            line.strip() for line in Path(args.captions_file).read_text().splitlines() if line.strip()
        ]
    if not captions or any(not c.strip() for c in captions):
        print("bsa generate: give at least one non-empty --caption (or --captions-file)", file=sys.stderr)
        return 2
    steps = args.steps or cfg.eval.steps
    print(
        f"generating {len(captions)} clip(s) with {model_in_use(cfg)} at {steps} steps, guidance {args.guidance}"
    )
    if args.dry_run:
        return 0
    out = generate_clips(cfg, captions, args.seed, steps, args.guidance, args.out)
    print(f"wrote {len(captions)} wav file(s) to {out}/ (list: {out}/captions.csv)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa generate", __doc__.strip().splitlines()[0])
    parser.add_argument("--caption", action="append", help="a caption (repeatable)")
    parser.add_argument("--captions-file", help="a text file, one caption per line")
    parser.add_argument("--steps", type=int, default=0, help="sampling steps (default: eval.steps)")
    parser.add_argument("--guidance", type=float, default=2.5, help="guidance scale (AudioLDM convention)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/generate")
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
