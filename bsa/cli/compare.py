"""``python -m bsa.cli.compare experiments/embedded-gpu.yaml distill.target_steps=25 compare.seeds=[0,1,2]``

Compare loss weightings: for each seed, one shared guided stage (the w-conditioned teacher), then
one progressive distillation per weighting from it — same teacher, same data order, same steps —
each stage scored by the evaluation callback against the real clips and the CFG teacher. W&B
groups every stage run under the comparison id. Finally results.json / results.md (mean ± std
over seeds per weighting and step count) and the dashboard (``bsa.cli.dashboard``).
Runs are separate processes (``compare.parallel`` at once); running the same command again
skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from bsa.cli.common import config_parser, run_with_config, split_items
from bsa.config import BsaConfig


def compare_id(cfg: BsaConfig) -> str:
    return cfg.compare.id or f"{cfg.preset}-{cfg.distill.target_steps}steps"


def compare_dir(cfg: BsaConfig) -> Path:
    return Path(cfg.paths.output_root) / "compare" / compare_id(cfg)


def planned_runs(cfg: BsaConfig, base_overrides: list[str]) -> list[list[dict]]:
    """Waves of runs: [guided stage per seed], then [every (weighting, seed)]. Each run is
    ``{"name", "overrides"}``; ``overrides`` go after the user's own."""
    c, d = cfg.compare, cfg.distill
    cid, out = compare_id(cfg), compare_dir(cfg)
    common = [
        f"paths.output_root={out}",
        f"logging.wandb_group={cid}",
        f"distill.reference_teacher={cfg.models.teacher}",
        f"eval.reference_cache={out / 'reference_teacher.safetensors'}",  # the teacher is scored once, not once per run
    ]
    first, second = [], []
    for seed in c.seeds:
        start = cfg.models.teacher
        if d.guided_stage:
            name = f"guided-seed{seed}"
            first.append(
                {
                    "name": name,
                    "overrides": [
                        *common,
                        f"distill.run_name={name}",
                        f"trainer.seed={seed}",
                        f"distill.target_steps={d.teacher_steps}",
                    ],
                }
            )
            start = str(out / name / f"stage00_guided_{d.teacher_steps}steps")
        for w in c.weightings:
            name = f"{w}-seed{seed}"
            second.append(
                {
                    "name": name,
                    "overrides": [
                        *common,
                        f"distill.run_name={name}",
                        f"trainer.seed={seed}",
                        f"distill.weighting={w}",
                        f"models.teacher={start}",
                        "distill.guided_stage=false",
                    ],
                }
            )
    return [wave for wave in (first, second) if wave]


def _run_wave(
    runs: list[dict], files: list[str], overrides: list[str], parallel: int, out: Path
) -> list[str]:
    """Run ``bsa.cli.distill`` for each run, ``parallel`` at a time; returns the names that failed."""
    pending, active, failed = list(runs), [], []
    (out / "logs").mkdir(parents=True, exist_ok=True)
    while pending or active:
        while pending and len(active) < parallel:
            run = pending.pop(0)
            log = open(out / "logs" / f"{run['name']}.log", "a")
            argv = [sys.executable, "-m", "bsa.cli.distill", *files, *overrides, *run["overrides"]]
            print(f"[compare] start {run['name']} (log: {log.name})", flush=True)
            active.append((run, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(1.0)
        for item in list(active):
            run, proc, log = item
            if proc.poll() is not None:
                active.remove(item)
                log.close()
                status = (
                    "done"
                    if proc.returncode == 0
                    else "unfinished (stopped by distill.stop_after: run again to continue)"
                    if proc.returncode == 3
                    else f"FAILED (exit {proc.returncode}, see {log.name})"
                )
                print(f"[compare] {run['name']}: {status}", flush=True)
                if proc.returncode:
                    failed.append(run["name"])
    return failed


def collect(out: Path) -> list[dict]:
    """Every final evaluation record of the comparison's runs (teacher rows from the guided runs,
    or from the first weighting run when there is no guided stage)."""
    from bsa.cli.summary import read_eval_log

    rows = []
    for log in sorted(out.glob("*/eval.jsonl")):
        run = log.parent.name
        kind, seed = run.rsplit("-seed", 1)
        for r in read_eval_log(log):
            rows.append({"run": run, "weighting": kind, "seed": int(seed), **r})
    return rows


def aggregate(
    rows: list[dict], metrics=("fad_real", "fad_teacher", "clap", "is", "acc_mean", "seconds_per_clip")
):
    """(weighting, steps) → {metric: (mean, std over seeds, n)}; the teacher under weighting "teacher"."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r["stage"] == -1:
            key = ("teacher", r["steps"])
        elif r["weighting"] == "guided":
            key = ("guided", r["steps"])
        else:
            key = (r["weighting"], r["steps"])
        groups.setdefault(key, []).append(r)
    table = {}
    for key, rs in groups.items():
        stats = {}
        for m in metrics:
            vals = [r[m] for r in rs if m in r and r[m] == r[m]]
            if vals:
                mean = sum(vals) / len(vals)
                std = (
                    math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
                )
                stats[m] = (mean, std, len(vals))
        stats["nfe"] = rs[0].get("nfe")
        table[key] = stats
    return table


def format_results(cfg: BsaConfig, table: dict, minutes: float | None = None) -> str:
    weightings = cfg.compare.weightings
    steps = sorted({s for (w, s) in table if w in weightings}, reverse=True)
    lines = [
        f"# Weighting comparison {compare_id(cfg)}",
        "",
        f"{cfg.distill.plan.describe()} from the {cfg.distill.teacher_steps}-step CFG teacher (guidance "
        f"{cfg.distill.guidance_scale}); seeds {list(cfg.compare.seeds)}; {cfg.distill.steps_per_stage} steps per "
        f"stage, batch {cfg.distill.batch_size}; {cfg.distill.eval_clips} test captions."
        + (f" Wall clock {minutes:.1f} min." if minutes else ""),
        "Cells: mean ± std over seeds.",
        "",
    ]
    teacher = next((v for (w, _), v in table.items() if w == "teacher"), None)
    for metric, title, better in (
        ("fad_real", "FAD vs real test clips", "lower"),
        ("fad_teacher", "FAD vs the teacher's outputs", "lower"),
        ("clap", "CLAP score", "higher"),
        ("acc_mean", "attribute accuracy", "higher"),
        ("is", "IS", "higher"),
    ):
        lines += [
            f"## {title} ({better} is better)",
            "",
            "| steps | " + " | ".join(weightings) + " |",
            "|---" * (len(weightings) + 1) + "|",
        ]
        if teacher and metric in teacher:
            lines.append(
                f"| teacher @ {cfg.distill.teacher_steps} | {_cell(teacher[metric])} |"
                + " |" * (len(weightings) - 1)
            )
        for n in steps:
            cells = [_cell(table.get((w, n), {}).get(metric)) for w in weightings]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    if teacher and "fad_real" in teacher:
        t = teacher["fad_real"][0]
        lines += [
            f"## Quality ratio FAD(student) / FAD(teacher @ {cfg.distill.teacher_steps}), against real clips",
            "",
        ]
        for w in weightings:
            ratios = {
                n: table[(w, n)]["fad_real"][0] / t
                for n in steps
                if (w, n) in table and "fad_real" in table[(w, n)]
            }
            within = [n for n, r in ratios.items() if r <= 1.35]
            lines.append(
                f"- {w}: "
                + ", ".join(f"{n}: {r:.2f}×" for n, r in ratios.items())
                + (
                    f" — smallest step count within 1.35×: {min(within)}"
                    if within
                    else " — none within 1.35×"
                )
            )
        lines.append("")
    return "\n".join(lines)


def _cell(v) -> str:
    if not v:
        return "–"
    mean, std, n = v
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    files, overrides = split_items(args.items)
    out = compare_dir(cfg)
    waves = planned_runs(cfg, overrides)
    print(f"comparison {compare_id(cfg)} → {out}")
    for i, wave in enumerate(waves):
        print(f"  wave {i + 1}: " + ", ".join(r["name"] for r in wave))
    if args.dry_run:
        return 0
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    for wave in waves:
        failed = _run_wave(wave, files, overrides, cfg.compare.parallel, out)
        if failed:
            print(
                f"bsa compare: runs failed: {failed}; fix and run the same command again (finished runs are kept)",
                file=sys.stderr,
            )
            return 1
    rows = collect(out)
    table = aggregate(rows)
    (out / "results.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "config": {"weightings": list(cfg.compare.weightings), "seeds": list(cfg.compare.seeds)},
            },
            indent=1,
        )
        + "\n"
    )
    text = format_results(cfg, table, (time.time() - start) / 60)
    (out / "results.md").write_text(text + "\n")
    print(text)
    from bsa.cli.dashboard import build_dashboard

    page = build_dashboard(out, cfg)
    print(f"dashboard: {page}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa compare", __doc__.strip().splitlines()[2])
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
