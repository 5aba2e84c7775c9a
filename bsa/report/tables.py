"""Tables of results: a distillation run's summary, a comparison's mean ± std over seeds, the
table `bsa evaluate` prints. Titles and better-directions come from :data:`bsa.report.metrics.METRICS`."""

from __future__ import annotations

import math
from pathlib import Path

from bsa.report.metrics import AGGREGATED, BY_KEY, QUALITY

NAN = float("nan")


def group_key(row: dict) -> tuple[str, int]:
    """(weighting, sampling steps) of a comparison row; the teacher and the shared guided stage
    under "teacher" and "guided" (from the record's mode, not from its run's name)."""
    if row["stage"] == -1 or row.get("mode") == "teacher":
        return ("teacher", row["steps"])
    if row.get("mode") == "guided":
        return ("guided", row["steps"])
    return (row["weighting"], row["steps"])


def mean_std(values: list[float]) -> tuple[float, float, int]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std, len(values)


def aggregate(rows: list[dict], metrics=AGGREGATED) -> dict[tuple[str, int], dict]:
    """(weighting, steps) → {metric: (mean, std over seeds, n)} and the NFE."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault(group_key(r), []).append(r)
    table = {}
    for key, rs in groups.items():
        stats = {}
        for m in metrics:
            vals = [r[m] for r in rs if m in r and r[m] == r[m]]
            if vals:
                stats[m] = mean_std(vals)
        stats["nfe"] = rs[0].get("nfe")
        table[key] = stats
    return table


def cell(v) -> str:
    """A (mean, std, n) cell: "mean ± std" over several seeds, "mean" for one, "–" for none."""
    if not v:
        return "–"
    mean, std, n = v
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def format_results(cfg, table: dict, minutes: float | None = None, title: str = "") -> str:
    """The comparison's results.md: one table per quality metric, weightings as columns."""
    weightings = cfg.compare.weightings
    d = cfg.distill
    steps = sorted({s for (w, s) in table if w in weightings}, reverse=True)
    lines = [
        f"# Weighting comparison {title}",
        "",
        f"{d.plan.describe()} from the {d.teacher_steps}-step CFG teacher (guidance "
        f"{d.guidance_scale}); seeds {list(cfg.compare.seeds)}; {d.steps_per_stage} steps per "
        f"stage, batch {d.batch_size}; {d.eval_clips} test captions."
        + (f" Wall clock {minutes:.1f} min." if minutes else ""),
        "Cells: mean ± std over seeds.",
        "",
    ]
    teacher = next((v for (w, _), v in table.items() if w == "teacher"), None)
    for metric in QUALITY:
        m = BY_KEY[metric]
        lines += [
            f"## {m.title} ({m.better} is better)",
            "",
            "| steps | " + " | ".join(weightings) + " |",
            "|---" * (len(weightings) + 1) + "|",
        ]
        if teacher and metric in teacher:
            lines.append(
                f"| teacher @ {d.teacher_steps} | {cell(teacher[metric])} |" + " |" * (len(weightings) - 1)
            )
        for n in steps:
            cells = [cell(table.get((w, n), {}).get(metric)) for w in weightings]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines.append("")
    if teacher and "fad_real" in teacher:
        t = teacher["fad_real"][0]
        lines += [f"## Quality ratio FAD(student) / FAD(teacher @ {d.teacher_steps}), against real clips", ""]
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


SUMMARY_COLUMNS = ("nfe", "fad_real", "fad_teacher", "clap", "is", "acc_mean", "seconds_per_clip")
_SUMMARY_FORMAT = {"nfe": "{}", "fad_real": "{:.2f}", "fad_teacher": "{:.2f}", "is": "{:.2f}"}


def format_summary(cfg, run_dir: str | Path, stages: list, rows: list[dict], seconds: float) -> str:
    """A distillation run's summary.md: the evaluation rows, where each stage lies, how to generate.
    ``stages``: the run's stage results (``.stage`` a :class:`bsa.diffusion.Stage`, ``.folder``)."""
    d = cfg.distill
    lines = [
        f"# bsa distillation — {Path(run_dir).name}",
        "",
        f"{d.plan.describe()}, weighting {d.weighting}, {seconds / 60:.1f} min"
        f" (this invocation), {d.eval_clips} test captions, seeds from {cfg.eval.seed}.",
        "",
    ]
    if rows:
        heads = ["model", "steps", *(BY_KEY[k].short for k in SUMMARY_COLUMNS)]
        lines += ["| " + " | ".join(heads) + " |", "|---" * len(heads) + "|"]
        for r in rows:
            cells = [
                _SUMMARY_FORMAT.get(k, "{:.3f}").format(r.get(k, NAN)) if k != "nfe" else str(r.get(k))
                for k in SUMMARY_COLUMNS
            ]
            lines.append(f"| {r['row']} | {r['steps']} | " + " | ".join(cells) + " |")
        lines.append("")
    for st in stages:
        lines.append(
            f"- stage {st.stage.index} ({st.stage.mode}, {st.stage.student_steps} steps): {st.folder}"
        )
    if stages:
        last = stages[-1]
        lines += [
            "",
            "Generate with the final student:",
            f"    bsa generate experiments/{cfg.preset}.yaml eval.model={last.folder} "
            f'--steps {last.stage.student_steps} --caption "A loud high-pitched siren plays continuously in silence"',
        ]
    return "\n".join(lines)


EVALUATE_COLUMNS = (
    "fad_real",
    "fad_teacher",
    "fad_teacher_ratio",
    "paired_embedding_cosine",
    "paired_attribute_agreement",
    "paired_clap_difference",
    "clap",
    "is",
    "acc_source",
    "acc_pitch",
    "acc_rhythm",
    "acc_mean",
    "silence_floor_dbfs",
    "nfe",
    "seconds_per_clip",
)


def format_table(results: dict[str, dict[str, float]]) -> str:
    """`bsa evaluate`'s table: one row per scored model or baseline."""
    cols = [c for c in EVALUATE_COLUMNS if any(c in r for r in results.values())]
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row, r in results.items():
        lines.append(f"| {row} | " + " | ".join(f"{r[c]:.3f}" if c in r else "–" for c in cols) + " |")
    return "\n".join(lines)
