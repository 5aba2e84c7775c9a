"""``bsa bench --out runs/bench.json``: sampling speed of the teacher against its students, and
distillation-step throughput, side by side in one run (GPU for absolute numbers)."""

from __future__ import annotations

import argparse
import sys

COMBOS_HELP = "training: fp32|tf32|bf16 [+cl +compile|+ro|+regional +foreach +graphs +cudnn +lpnorm +guard|+devguard +profile]"


def main(argv: list[str] | None = None) -> int:
    from bsa.config import DDP_COMM_HOOKS, DIAGNOSTIC_COMM_HOOKS
    from bsa.experiment.bench import COMBOS, parse_bench_request, run_bench

    parser = argparse.ArgumentParser(prog="bsa bench", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", default="runs/bench.json")
    parser.add_argument("--what", default="all", help="all, or sampling,training,loading; or ddp")
    parser.add_argument("--combos", default=",".join(COMBOS), help=COMBOS_HELP)
    parser.add_argument(
        "--models", default="embedded,185m", help="sampling and training: embedded and/or 185m; ddp: one"
    )
    parser.add_argument("--batch-185m", type=int, default=16, help="training batch of the 185 M model")
    parser.add_argument("--devices", type=int, default=2, help="ddp: GPUs (1: the one-GPU reference)")
    parser.add_argument("--ddp-batch", dest="batch", type=int, default=64, help="ddp: batch per GPU")
    parser.add_argument("--ddp-steps", dest="steps", type=int, default=20, help="ddp: timed steps, after 5")
    parser.add_argument("--bucket-mb", dest="bucket_cap_mb", type=float, help="ddp: trainer.ddp_bucket_mb")
    hooks = (*DDP_COMM_HOOKS, *DIAGNOSTIC_COMM_HOOKS)
    parser.add_argument(
        "--comm-hook", default="none", choices=hooks, help="ddp: trainer.ddp_comm_hook; noop: none sent"
    )
    parser.add_argument("--config", nargs="*", default=["experiments/embedded-gpu.yaml"], help="loading")
    parser.add_argument("--summary", help="also the speed issue's figures (results/speed/summary.json)")
    parser.add_argument("--from", dest="runs", nargs="+", help="no run: --summary of these bench JSON files")
    parser.add_argument(
        "--sampling-compile", default="off", help="sampling: off,cuda-graphs,loop-graphs,<torch.compile mode>"
    )
    args = parser.parse_args(argv)
    command = "bsa bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.runs:  # the figures of earlier runs, each ratio within its own run
        from bsa.report.bench import write_speed_summary

        return write_speed_summary(args.runs, args.summary or parser.error("--from needs --summary"), command)
    try:  # a typo fails before any model is built
        combos, models, modes = parse_bench_request(
            args.what, args.combos, args.models, args.sampling_compile
        )
    except ValueError as e:
        parser.error(str(e))
    ddp = {k: getattr(args, k) for k in ("devices", "batch", "steps", "bucket_cap_mb", "comm_hook")}
    result = run_bench(
        args.out, args.what, combos, models, args.batch_185m, args.config, modes, args.summary, command, ddp
    )
    if result is not None:  # None: a ddp rank other than 0, which writes nothing
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
