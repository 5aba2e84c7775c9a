"""Issue "Speed at AudioLDM scale": does a 2-rank DDP run train like one process at the same global
batch? The embedded-cpu preset's guided stage (the shipped teacher, v-student), STEPS optimizer
steps at a global batch of 16, run as 1 process × 16 and as 2 gloo ranks × 8 for each seed (Lightning
DDP on this CPU: the plumbing of the GPU runs — per-rank draws, gradient averaging, the learning
rate — on the small model). Each rank draws its own noise, so the curves are compared as
statistics: each seed's mean logged loss per window of steps, and their mean and spread over seeds
(rank 0 logs its own batch of 8 under DDP: a noisier reading of the same mean). Writes
results/ddp-loss-curve-cpu-<date>/summary.json.
    bsa data experiments/embedded-cpu.yaml && bsa cache experiments/embedded-cpu.yaml
    python experiments/cpu/ddp_loss_curve.py --steps 300
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETUPS = {
    "1 process × 16": ["trainer.devices=1", "distill.batch_size=16"],
    "2 DDP ranks × 8": ["trainer.devices=2", "distill.batch_size=8"],
}


def losses(run: Path) -> list[tuple[int, float]]:
    rows = csv.DictReader(open(next(run.glob("logs/stage00_*/metrics.csv"))))
    return [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]


def window_mean(points: list[tuple[int, float]], lo: int, hi: int) -> float:
    v = [x for s, x in points if lo <= s < hi]
    return sum(v) / len(v)


def run_name(overrides: list[str], seed: int) -> str:
    """``ddp-<devices>x<batch>-seed<seed>``: a finished run of that name is only read again."""
    devices, batch = (x.split("=")[1] for x in overrides)
    return f"ddp-{devices}x{batch}-seed{seed}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--root", default="runs/ddp-loss-curve")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    curves, seconds = {}, {}
    for seed in seeds:
        for name, extra in SETUPS.items():
            run = run_name(extra, seed)
            argv = [
                sys.executable,
                "-m",
                "bsa.cli.distill",
                "experiments/embedded-cpu.yaml",
                "distill.target_steps=200",
                f"distill.guided_steps={args.steps}",
                "distill.eval_clips=0",
                "logging.wandb=false",
                f"paths.output_root={args.root}",
                f"distill.run_name={run}",
                "trainer.log_every_n_steps=1",
                f"trainer.seed={seed}",
                *extra,
            ]
            start = time.time()
            out = subprocess.run(
                argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            seconds[run] = round(time.time() - start, 1)
            curves[run] = losses(Path(args.root) / run)
            print(f"{name}, seed {seed}: {len(curves[run])} logged steps ({seconds[run]} s)", flush=True)
    windows = [(lo, min(lo + args.window, args.steps)) for lo in range(0, args.steps, args.window)]
    rows = []
    for lo, hi in windows:
        row = {"steps": [lo, hi]}
        for name, extra in SETUPS.items():  # each seed's window mean; their mean and spread over seeds
            means = [window_mean(curves[run_name(extra, s)], lo, hi) for s in seeds]
            row[name] = {
                "per_seed": means,
                "mean": sum(means) / len(means),
                "se": (statistics.stdev(means) / math.sqrt(len(means))) if len(means) > 1 else None,
            }
        a, b = (row[n] for n in SETUPS)
        if a["se"] is not None:
            diff, se = b["mean"] - a["mean"], math.sqrt(a["se"] ** 2 + b["se"] ** 2)
            row["difference"] = {"mean": diff, "lo": diff - 1.96 * se, "hi": diff + 1.96 * se}
        rows.append(row)
        print(
            f"steps {lo}-{hi}: "
            + "; ".join(
                f"{n} {row[n]['mean']:.4f} (seeds {', '.join(f'{m:.3f}' for m in row[n]['per_seed'])})"
                for n in SETUPS
            )
            + (
                f"; 2 ranks − 1: {row['difference']['mean']:+.4f} [{row['difference']['lo']:+.4f}, {row['difference']['hi']:+.4f}]"
                if "difference" in row
                else ""
            ),
            flush=True,
        )
    import torch

    date = time.strftime("%Y-%m-%d")
    out_dir = Path(f"results/ddp-loss-curve-cpu-{date}")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "windows": rows,
        "curves": curves,
        "seconds": seconds,
        "global_batch": 16,
        "stage": "guided (embedded-cpu preset)",
        "device": f"CPU ({os.cpu_count()} cores, {platform.machine()})",
        "torch": torch.__version__,
        "date": date,
        "command": f"python experiments/cpu/ddp_loss_curve.py --steps {args.steps} --window {args.window} --seeds {args.seeds}",
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"→ {out_dir / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
