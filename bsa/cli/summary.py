"""After a distillation run: score every stage against the teacher on fixed captions and seeds,
and write the summary a person reads first."""

from __future__ import annotations

from pathlib import Path

from bsa.config import BsaConfig
from bsa.durable import read_jsonl


def final_records(path: Path) -> list[dict]:
    """The final evaluation record of the teacher and of each stage in ``eval.jsonl`` (the latest
    line of each wins: a resumed run may have scored a stage again), in stage order."""
    latest: dict[int, dict] = {}
    for rec in read_jsonl(path):
        if rec.get("final", True):
            latest[rec["stage"]] = rec
    return [r for _, r in sorted(latest.items())]


def read_eval_log(path: Path) -> list[dict]:
    """:func:`final_records` as flat rows (label, stage and the metrics)."""
    return [{"row": r["label"], "stage": r["stage"], **r["metrics"]} for r in final_records(path)]


def format_summary(cfg: BsaConfig, result: dict, rows: list[dict], seconds: float) -> str:
    lines = [
        f"# bsa distillation — {Path(result['run_dir']).name}",
        "",
        f"{cfg.distill.plan.describe()}, weighting {cfg.distill.weighting}, {seconds / 60:.1f} min"
        f" (this invocation), {cfg.distill.eval_clips} test captions, seeds from {cfg.eval.seed}.",
        "",
    ]
    if rows:
        lines += [
            "| model | steps | NFE | FAD vs real | FAD vs teacher | CLAP | IS | attribute acc | s/clip |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        nan = float("nan")
        for r in rows:
            lines.append(
                f"| {r['row']} | {r['steps']} | {r['nfe']} | {r.get('fad_real', nan):.2f} | "
                f"{r.get('fad_teacher', nan):.2f} | {r['clap']:.3f} | {r.get('is', nan):.2f} | "
                f"{r.get('acc_mean', nan):.3f} | {r['seconds_per_clip']:.3f} |"
            )
        lines.append("")
    last = result["stages"][-1]["folder"] if result["stages"] else None
    for st in result["stages"]:
        lines.append(
            f"- stage {st['spec'].index} ({st['spec'].mode}, {st['spec'].student_steps} steps): {st['folder']}"
        )
    if last:
        lines += [
            "",
            "Generate with the final student:",
            f"    python -m bsa.cli.generate experiments/{cfg.preset}.yaml models.teacher={last} "
            f'--steps {result["stages"][-1]["spec"].student_steps} --caption "A loud high-pitched siren plays continuously in silence"',
        ]
    return "\n".join(lines)
