"""``bsa bench --out runs/bench.json``: sampling speed of the teacher against its students, and
distillation-step throughput, side by side in one run (GPU for absolute numbers)."""

from __future__ import annotations

import argparse
import sys

MODELS = ("embedded", "185m")


def main(argv: list[str] | None = None) -> int:
    from bsa.experiment.bench import COMBOS, bench_parts, parse_combo, parse_sampling_modes, run_bench

    parser = argparse.ArgumentParser(prog="bsa bench", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", default="runs/bench.json")
    parser.add_argument("--what", default="all", help="all, or sampling,training,loading (comma-separated)")
    parser.add_argument(
        "--combos",
        default=",".join(COMBOS),
        help="training: comma-separated settings, each fp32|tf32|bf16 [+cl] [+compile|+ro] [+foreach] [+graphs] (default: %(default)s)",
    )
    parser.add_argument("--models", default="embedded,185m", help="training: embedded and/or 185m")
    parser.add_argument("--batch-185m", type=int, default=16, help="training batch of the 185 M model")
    parser.add_argument(
        "--config", nargs="*", default=["experiments/embedded-gpu.yaml"], help="loading: its cache"
    )
    parser.add_argument("--summary", help="also the speed issue's figures (results/speed/summary.json)")
    parser.add_argument("--from", dest="runs", nargs="+", help="no run: --summary of these bench JSON files")
    parser.add_argument(
        "--sampling-compile",
        default="off",
        help="sampling: comma-separated modes side by side: off (eager), cuda-graphs, or a torch.compile "
        "mode, e.g. off,cuda-graphs,reduce-overhead",
    )
    args = parser.parse_args(argv)
    command = "bsa bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.runs:  # the figures of earlier runs, each ratio within its own run
        from bsa.report.bench import write_speed_summary

        return write_speed_summary(args.runs, args.summary or parser.error("--from needs --summary"), command)
    combos = [c.strip() for c in args.combos.split(",") if c.strip()]
    models = {m.strip() for m in args.models.split(",")}
    if not models <= set(MODELS):
        parser.error(f"--models: unknown {sorted(models - set(MODELS))}; expected embedded, 185m")
    try:
        modes, _ = parse_sampling_modes(args.sampling_compile), bench_parts(args.what)
        for c in combos:
            parse_combo(c)
    except ValueError as e:  # a typo fails before any model is built
        parser.error(str(e))
    run_bench(args.out, args.what, combos, models, args.batch_185m, args.config, modes, args.summary, command)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
