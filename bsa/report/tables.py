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


# the per-clip scores (of a record's ``per_clip``) weightings are compared on
PAIRED_KEYS = ("clap", "acc_mean")


def weighting_differences(records: list[dict], reference: str = "bsa", keys=PAIRED_KEYS) -> dict:
    """(weighting, steps) → {key: (mean, lo, hi)}: each weighting's per-clip score minus the
    ``reference`` weighting's, on the seeds both ran (same captions and initial noise), with a 95 %
    bootstrap interval over seeds and captions (:func:`bsa.metrics.paired.two_level_bootstrap_ci`).
    From the final progressive records that keep their per-clip scores. Records tagged with a
    ``block`` (:func:`bsa.report.study.study_of_comparisons`: each comparison that trained its own
    reference) pair with the reference of their block only."""
    import torch

    from bsa.metrics.paired import two_level_bootstrap_ci

    by = {}
    for r in records:
        if r.get("mode") == "progressive" and r.get("per_clip"):
            by[(r["weighting"], r["steps"], r.get("block"), r["seed"])] = r["per_clip"]
    out = {}
    for w, n in sorted({(w, n) for (w, n, _, _) in by}):
        if w == reference:
            continue
        units = sorted(
            ((b, s) for (ww, nn, b, s) in by if ww == w and nn == n and (reference, n, b, s) in by),
            key=lambda u: (str(u[0]), u[1]),
        )
        if not units:
            continue
        out[(w, n)] = {
            k: two_level_bootstrap_ci(
                torch.tensor([by[(w, n, *u)][k] for u in units])
                - torch.tensor([by[(reference, n, *u)][k] for u in units])
            )
            for k in keys
            if all(k in by[(w, n, *u)] and k in by[(reference, n, *u)] for u in units)
        } | {"seeds": [s for _, s in units]}
    return out


def format_differences(differences: dict, reference: str = "bsa") -> str:
    """results.md's section of paired differences to ``reference``; ✓ marks an interval that
    excludes zero (a resolved difference)."""
    if not differences:
        return ""
    lines = [
        f"## Paired difference to {reference} (same seeds, captions and noise; 95 % bootstrap over seeds and captions)",
        "",
        "| weighting | steps | seeds | " + " | ".join(f"Δ {k}" for k in PAIRED_KEYS) + " |",
        "|---" * (3 + len(PAIRED_KEYS)) + "|",
    ]
    for (w, n), d in sorted(differences.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        cells = []
        for k in PAIRED_KEYS:
            if k in d:
                mean, lo, hi = d[k]
                cells.append(f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]" + (" ✓" if lo > 0 or hi < 0 else ""))
            else:
                cells.append("–")
        lines.append(f"| {w} | {n} | {len(d['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


SUMMARY_COLUMNS = ("nfe", "fad_real", "fad_teacher", "clap", "is", "acc_mean", "seconds_per_clip")
_SUMMARY_FORMAT = {"nfe": "{}", "fad_real": "{:.2f}", "fad_teacher": "{:.2f}", "is": "{:.2f}"}


PAIRED_COLUMNS = (  # (key in the records, column head, format)
    ("paired_clap_difference", "Δ CLAP", "{:+.4f}"),
    ("paired_acc_difference", "Δ attribute acc", "{:+.4f}"),
    ("paired_embedding_cosine", "embedding cosine", "{:.4f}"),
    ("paired_attribute_agreement", "attribute agreement", "{:.4f}"),
    ("paired_latent_rmse", "latent RMSE", "{:.4f}"),
    ("fad_teacher_ratio", "FAD vs teacher / floor", "{:.2f}"),
)


def format_paired_rows(rows: list[dict]) -> list[str]:
    """summary.md's table of each student against the teacher, clip by clip (same caption, noise
    and guidance), every figure with its 95 % interval where the record has one."""
    rows = [r for r in rows if any(k in r for k, _, _ in PAIRED_COLUMNS[:5])]
    if not rows:
        return []
    cols = [c for c in PAIRED_COLUMNS if any(c[0] in r for r in rows)]
    lines = [
        "Paired with the teacher (same caption, initial noise and guidance; 95 % interval over the "
        "captions — FAD's from half-samples, and only with at least as many clips as embedding dimensions):",
        "",
        "| model | steps | " + " | ".join(head for _, head, _ in cols) + " |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            if key not in r:
                cells.append("–")
                continue
            cell = fmt.format(r[key])
            if f"{key}_lo" in r:
                cell += f" [{fmt.format(r[f'{key}_lo'])}, {fmt.format(r[f'{key}_hi'])}]"
            cells.append(cell)
        lines.append(f"| {r['row']} | {r['steps']} | " + " | ".join(cells) + " |")
    return lines + [""]


def format_summary(cfg, run_dir: str | Path, stages: list, rows: list[dict], seconds: float) -> str:
    """A distillation run's summary.md: the evaluation rows, where each stage lies, how to generate.
    ``stages``: the run's stage results (``.stage`` a :class:`bsa.diffusion.Stage`, ``.folder``)."""
    d = cfg.distill
    lines = [
        f"# bsa distillation — {Path(run_dir).name}",
        "",
        f"{d.plan.describe()}, weighting {d.weighting_label}"
        + (f" (the guided stage {d.guided_weighting_label})" if d.guided_weighting_label else "")
        + f", {seconds / 60:.1f} min"
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
    lines += format_paired_rows(rows)
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
