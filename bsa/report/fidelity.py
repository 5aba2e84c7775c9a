"""The fidelity summary (issue "Students that keep the teacher's quality"): for every student step
count of one recipe run on several seeds, how far the students are from the teacher they were
distilled from — clip by clip and in distribution — with intervals.

Read from the runs' ``eval.jsonl`` only: the teacher's record keeps its per-clip scores, each
student's final record its own and the FAD against the teacher with its half-sample standard
error; the teacher-vs-teacher floor (the teacher with other initial noise) is in both.
"""

from __future__ import annotations

import math
import statistics

from bsa.metrics.frechet import normal_interval

# the per-clip score → the difference it becomes
DELTAS = {"clap": "clap_delta", "acc_mean": "attribute_acc_delta"}


def step_key(record: dict) -> str:
    """``200 guided`` for the guided stage's student, the step count for the progressive ones."""
    return f"{record['steps']} guided" if record.get("mode") == "guided" else str(record["steps"])


def interval_cell(v: dict | None, fmt: str = "{:+.4f}") -> str:
    """A table cell "mean [lo, hi]" of a {mean, lo, hi} figure, the mean alone of a figure without
    an interval, "–" where there is none."""
    if not v:
        return "–"
    return (
        f"{fmt.format(v['mean'])} [{fmt.format(v['lo'])}, {fmt.format(v['hi'])}]"
        if "lo" in v
        else fmt.format(v["mean"])
    )


def _interval(mean: float, lo: float, hi: float) -> dict[str, float]:
    return {"mean": mean, "lo": lo, "hi": hi}


def pooled_estimate(points: list[float], standard_errors: list[float]) -> dict[str, float] | None:
    """The mean of per-seed estimates with a normal 95 % interval whose variance adds the mean
    per-seed (caption-sampling) variance and the between-seed variance of the mean; None when a
    seed has no standard error (too few clips for one)."""
    if not points or any(se is None for se in standard_errors):
        return None
    mean = sum(points) / len(points)
    within = (sum(standard_errors) / len(standard_errors)) ** 2  # shared captions: not divided by S
    between = statistics.variance(points) / len(points) if len(points) > 1 else 0.0
    return _interval(mean, *normal_interval(mean, math.sqrt(within + between)))


def students_by_steps(
    runs: list[list[dict]], teachers: list[dict], with_per_clip: bool = False
) -> dict[str, list[tuple[dict, dict]]]:
    """Step count (:func:`step_key`) → (student record, its run's teacher) of every seed that reached
    it, most steps first; ``with_per_clip``: only students whose record keeps per-clip scores."""
    by_steps: dict[str, list[tuple[dict, dict]]] = {}
    for records, teacher in zip(runs, teachers, strict=True):
        for r in records:
            if r.get("mode") in ("guided", "progressive") and (r.get("per_clip") or not with_per_clip):
                by_steps.setdefault(step_key(r), []).append((r, teacher))
    return dict(sorted(by_steps.items(), key=lambda kv: -int(kv[0].split()[0])))


def per_clip_differences(pairs: list[tuple[dict, dict]], score: str):
    """[seeds, clips] student − teacher of a per-clip ``score``, one row per (student, teacher) pair."""
    import torch

    return torch.tensor(
        [[a - b for a, b in zip(s["per_clip"][score], t["per_clip"][score], strict=True)] for s, t in pairs]
    )


def fidelity_summary(runs: list[list[dict]]) -> dict:
    """``runs``: the final records (teacher first) of each seed's run of one recipe. Per step
    count: ``clap_delta`` and ``attribute_acc_delta`` (student − teacher per clip, 95 % bootstrap
    over seeds and captions), ``fad_vs_teacher``, ``fad_floor`` and ``fad_ratio`` (normal 95 %
    intervals from the half-sample standard errors and the spread over seeds)."""
    from bsa.metrics.paired import two_level_bootstrap_ci
    from bsa.report.records import check_one_measurement

    if not runs:
        raise ValueError("no runs to summarise")
    check_one_measurement([r for records in runs for r in records])
    teachers = []
    for records in runs:
        t = [r for r in records if r.get("mode") == "teacher"]
        if not t or not t[0].get("per_clip"):
            raise ValueError("a run has no teacher record with per-clip scores (eval.jsonl)")
        teachers.append(t[0])
    seeds = sorted({r.get("seed") for records in runs for r in records if r.get("mode") != "teacher"})
    rows = {}
    for key, pairs in students_by_steps(runs, teachers, with_per_clip=True).items():
        students = [s for s, _ in pairs]
        # a step count that not every seed reached is summarised over the seeds that did
        row: dict = {"seeds": [s.get("seed") for s in students]}
        for score, name in DELTAS.items():
            if all(score in s["per_clip"] for s in students):
                row[name] = _interval(*two_level_bootstrap_ci(per_clip_differences(pairs, score)))
        for metric, name in (
            ("fad_teacher", "fad_vs_teacher"),
            ("fad_teacher_floor", "fad_floor"),
            ("fad_teacher_ratio", "fad_ratio"),
        ):
            m = [s["metrics"] for s in students]
            if all(metric in x for x in m):
                row[name] = pooled_estimate([x[metric] for x in m], [x.get(f"{metric}_se") for x in m])
        row["nfe"] = students[0]["metrics"].get("nfe")
        rows[key] = row
    protocol = teachers[0].get("protocol", {})
    return {
        "steps": rows,
        "attributes": attribute_shift(runs),
        "teacher": {
            k: teachers[0]["metrics"].get(k) for k in ("clap", "acc_mean", "fad_real", "fad_teacher_floor")
        },
        "captions": protocol.get("num_clips"),
        "seeds": seeds,
        "device": protocol.get("device"),
        "fad_note": None
        if all(v.get("fad_vs_teacher") for v in rows.values())
        else "no FAD interval: fewer evaluation clips than embedding dimensions",
    }


def attribute_shift(runs: list[list[dict]]) -> dict:
    """Where students differ from their teacher beyond the mean accuracy: per step count, each
    classifier head's accuracy (``acc_<head>``) and the FAD against the real clips, student −
    teacher. A head's difference is paired per clip with a 95 % bootstrap over seeds and captions
    where the records keep its per-clip correctness (``interval``: "95 % bootstrap"); records from
    before 2026-11-29 keep only the mean over heads per clip, and then it is the mean over seeds
    with their [min, max] (``interval``: "range over seeds"). FAD vs real has no standard error in
    the records: mean and range over seeds. One seed has no range: its value alone (``interval``:
    "one seed"). ``runs`` as :func:`fidelity_summary` takes them."""
    from bsa.metrics.paired import two_level_bootstrap_ci

    def shift(values: list[float]) -> dict:
        if len(values) == 1:
            return {"mean": values[0], "interval": "one seed"}
        return {
            **_interval(sum(values) / len(values), min(values), max(values)),
            "interval": "range over seeds",
        }

    teachers = [next(r for r in records if r.get("mode") == "teacher") for records in runs]
    heads = sorted(k for k in teachers[0]["metrics"] if k.startswith("acc_") and k != "acc_mean")
    out = {}
    for key, rows in students_by_steps(runs, teachers).items():
        row: dict = {"seeds": [s.get("seed") for s, _ in rows]}
        for head in heads:
            if all(head in (s.get("per_clip") or {}) and head in (t.get("per_clip") or {}) for s, t in rows):
                diffs = per_clip_differences(rows, head)
                row[head] = {**_interval(*two_level_bootstrap_ci(diffs)), "interval": "95 % bootstrap"}
            elif all(head in s["metrics"] for s, _ in rows):
                row[head] = shift([s["metrics"][head] - t["metrics"][head] for s, t in rows])
        for metric in ("fad_real", "silence_floor_dbfs"):  # teacher → student, each as recorded
            if all(metric in s["metrics"] and metric in t["metrics"] for s, t in rows):
                row[f"{metric}_teacher"] = shift([t["metrics"][metric] for _, t in rows])
                row[metric] = shift([s["metrics"][metric] for s, _ in rows])
        out[key] = row
    return out


def format_attribute_shift(shift: dict) -> str:
    """The table of :func:`attribute_shift`: one row per step count, a column per head."""
    rows = [r for r in shift.values() if r]
    heads = sorted({k for r in rows for k in r if k.startswith("acc_")})
    if not heads:
        return ""
    # teacher → student columns, the silence floor only where records keep it (from 2026-11-29)
    moves = [("fad_real", "FAD vs real", "{:.1f}")]
    if any("silence_floor_dbfs" in r for r in rows):
        moves.append(("silence_floor_dbfs", "silence floor (dBFS)", "{:.0f}"))
    lines = [
        "| steps | seeds | "
        + " | ".join(f"Δ {h[4:]}" for h in heads)
        + "".join(f" | {title}: teacher → student" for _, title, _ in moves)
        + " | interval |",
        "|---|---|" + "---|" * len(heads) + "---|" * len(moves) + "---|",
    ]
    for key, row in shift.items():
        kinds = sorted({row[h]["interval"] for h in heads if h in row})
        cells = [
            f"{fmt.format(row[f'{m}_teacher']['mean'])} → {interval_cell(row[m], fmt)}" if m in row else "–"
            for m, _, fmt in moves
        ]
        lines.append(
            f"| {key} | {','.join(str(s) for s in row['seeds'])} | "
            + " | ".join(interval_cell(row.get(h), "{:+.3f}") for h in heads)
            + "".join(f" | {c}" for c in cells)
            + f" | {', '.join(kinds)} |"
        )
    return "\n".join(lines)


def recipe_differences(
    variant: list[tuple[str, list[dict]]], reference: list[tuple[str, list[dict]]]
) -> dict:
    """How one recipe's students differ from another's, per student step count both reached: each
    list holds (run folder, final records) per seed, and the runs of one seed must have scored the
    same captions with the same initial noise (equal teacher records). ``clap_delta`` and
    ``attribute_acc_delta``: variant − reference per clip (95 % bootstrap over seeds and captions);
    ``fad_vs_teacher_delta``: FD(variant, teacher) − FD(reference, teacher) on shared half-samples
    of the clips' kept embeddings (``eval.keep_embeddings``;
    :func:`bsa.metrics.frechet.paired_frechet_difference`), pooled over seeds as
    :func:`pooled_estimate` does — absent where a run kept no embeddings."""

    from bsa.metrics.frechet import paired_frechet_difference
    from bsa.metrics.paired import two_level_bootstrap_ci
    from bsa.report.records import record_embedding

    def by_seed(runs):
        out = {}
        for folder, records in runs:
            teacher = next((r for r in records if r.get("mode") == "teacher"), None)
            students = {step_key(r): r for r in records if r.get("mode") in ("guided", "progressive")}
            seeds = {r.get("seed") for r in students.values()}
            if teacher is None or len(seeds) != 1:
                raise ValueError(f"{folder}: expected a teacher record and the students of one seed")
            out[seeds.pop()] = (folder, teacher, students)
        return out

    a, b = by_seed(variant), by_seed(reference)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("the two recipes share no seed: nothing is paired")
    for seed in seeds:
        if a[seed][1].get("per_clip") != b[seed][1].get("per_clip"):
            raise ValueError(
                f"seed {seed}: {a[seed][0]} and {b[seed][0]} did not score the same captions with the same noise"
                " (their teacher records differ)"
            )
    keys = set.intersection(*(set(a[s][2]) & set(b[s][2]) for s in seeds))
    rows = {}
    for key in sorted(keys, key=lambda k: -int(k.split()[0])):
        row: dict = {"seeds": seeds}
        for score, name in DELTAS.items():
            diffs = per_clip_differences([(a[s][2][key], b[s][2][key]) for s in seeds], score)
            row[name] = _interval(*two_level_bootstrap_ci(diffs))
        paired = []
        for s in seeds:
            (fa, ta, sa), (fb, _, sb) = a[s], b[s]
            ea, eb, et = (
                record_embedding(fa, sa[key]),
                record_embedding(fb, sb[key]),
                record_embedding(fa, ta),
            )
            if ea is None or eb is None or et is None:
                break
            paired.append(paired_frechet_difference(ea, eb, et, seed=s))
        else:
            row["fad_vs_teacher_delta"] = pooled_estimate([m for m, _ in paired], [se for _, se in paired])
        rows[key] = row
    return rows


def format_recipe_differences(rows: dict) -> str:
    """One row per step count of :func:`recipe_differences`, each difference with its interval."""

    lines = [
        "| steps | seeds | Δ CLAP | Δ attribute acc | Δ FAD vs teacher |",
        "|---|---|---|---|---|",
    ]
    for key, row in rows.items():
        lines.append(
            f"| {key} | {','.join(str(s) for s in row['seeds'])} | {interval_cell(row.get('clap_delta'))} | "
            f"{interval_cell(row.get('attribute_acc_delta'))} | {interval_cell(row.get('fad_vs_teacher_delta'), '{:+.2f}')} |"
        )
    return "\n".join(lines) + "\n"


def format_fidelity(summary: dict) -> str:
    """summary.md: one row per step count, each figure with its 95 % interval."""

    lines = [
        f"Fidelity to the teacher: {summary['captions']} captions, seeds {summary['seeds']}, "
        f"{summary['device']}, {summary.get('date', '')}",
        "",
        "| steps | NFE | seeds | Δ CLAP | Δ attribute acc | FAD vs teacher | floor (teacher vs teacher) | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, row in summary["steps"].items():
        seeds = ",".join(str(s) for s in row.get("seeds", []))
        lines.append(
            f"| {key} | {row.get('nfe', '–')} | {seeds} | {interval_cell(row.get('clap_delta'))} | "
            f"{interval_cell(row.get('attribute_acc_delta'))} | {interval_cell(row.get('fad_vs_teacher'), '{:.2f}')} | "
            f"{interval_cell(row.get('fad_floor'), '{:.2f}')} | {interval_cell(row.get('fad_ratio'), '{:.2f}')} |"
        )
    if summary.get("fad_note"):
        lines += ["", summary["fad_note"]]
    attributes = format_attribute_shift(summary["attributes"]) if summary.get("attributes") else ""
    if attributes:
        lines += ["", "Per classifier head, student − teacher (and FAD against the real clips):", ""]
        lines += attributes.splitlines()
    if summary.get("differences"):
        d = summary["differences"]
        lines += [
            "",
            f"Paired differences to {', '.join(d['against'])} (same seeds, captions and noise):",
            "",
        ]
        lines += format_recipe_differences(d["steps"]).splitlines()
    return "\n".join(lines) + "\n"


def accuracy_by_label(
    runs: list[list[dict]], labels: dict[str, list[str]], others: dict[str, dict] | None = None
) -> dict:
    """Each head's accuracy per caption label (e.g. loudness: loud / quiet), of the teacher and of
    the students per step count, each with its difference to the teacher paired clip by clip (95 %
    bootstrap over seeds and captions): where a head's difference to the teacher comes from.
    ``labels``: head → the caption's label of each of the first clips, in the records' order (the
    records may hold more clips: those are left out); only records that keep the head's per-clip
    correctness count. ``runs`` as :func:`fidelity_summary` takes them; ``others``: more columns,
    name → one model's per-clip scores on the same captions and noise (``bsa evaluate``'s
    per_clip.json), paired with the first run's teacher. {head: {label: {"clips": n, "teacher":
    acc, <column>: {"accuracy": acc, "delta": {mean, lo, hi}}}}}"""
    import torch

    from bsa.metrics.paired import two_level_bootstrap_ci

    teachers = [next(r for r in records if r.get("mode") == "teacher") for records in runs]
    columns = {steps: rows for steps, rows in students_by_steps(runs, teachers, with_per_clip=True).items()}
    columns |= {name: [({"per_clip": c}, teachers[0])] for name, c in (others or {}).items()}

    def column(pairs: list[tuple[dict, dict]], key: str, idx: list[int]) -> dict | None:
        kept = [(s["per_clip"][key], t["per_clip"][key]) for s, t in pairs if key in s["per_clip"]]
        if not kept:
            return None
        diffs = torch.tensor([[s[i] - t[i] for i in idx] for s, t in kept])
        return {
            "accuracy": sum(sum(s[i] for i in idx) / len(idx) for s, _ in kept) / len(kept),
            "delta": _interval(*two_level_bootstrap_ci(diffs)),
        }

    out: dict = {}
    for head, per_clip_labels in labels.items():
        key = f"acc_{head}"
        out[head] = {}
        for label in sorted(set(per_clip_labels)):
            idx = [i for i, v in enumerate(per_clip_labels) if v == label]
            out[head][label] = {
                "clips": len(idx),
                "teacher": sum(teachers[0]["per_clip"][key][i] for i in idx) / len(idx),
            } | {name: column(pairs, key, idx) for name, pairs in columns.items()}
    return out


def format_accuracy_by_label(table: dict, columns: tuple[str, ...]) -> str:
    """The table of :func:`accuracy_by_label`: a row per (head, label), the teacher's accuracy and
    each column's with its paired difference to the teacher."""
    lines = [
        "| head | label | clips | teacher | " + " | ".join(columns) + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    for head, by_label in table.items():
        for label, row in by_label.items():
            cells = [
                f"{row[c]['accuracy']:.3f} ({interval_cell(row[c]['delta'], '{:+.3f}')})"
                if row.get(c)
                else "–"
                for c in columns
            ]
            lines.append(
                f"| {head} | {label} | {row['clips']} | {row['teacher']:.3f} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def score_by_label(model: dict, reference: dict, labels: list[str], score: str) -> dict:
    """One per-clip ``score`` (e.g. ``level_db``) of two models on the same captions and noise,
    per caption label (the first ``len(labels)`` clips): each model's mean and the difference
    model − reference paired clip by clip with its 95 % bootstrap interval over captions.
    ``model``, ``reference``: per-clip scores (``bsa evaluate``'s per_clip.json, a record's
    ``per_clip``). {label: {"clips": n, "reference": mean, "model": mean, "delta": {mean, lo, hi}}}"""
    import torch

    from bsa.metrics.paired import bootstrap_mean_ci

    out = {}
    for label in sorted(set(labels)):
        idx = [i for i, v in enumerate(labels) if v == label]
        a = torch.tensor([model[score][i] for i in idx], dtype=torch.float64)
        b = torch.tensor([reference[score][i] for i in idx], dtype=torch.float64)
        out[label] = {
            "clips": len(idx),
            "reference": float(b.mean()),
            "model": float(a.mean()),
            "delta": _interval(*bootstrap_mean_ci(a - b)),
        }
    return out


def format_guidance_interval(teacher: dict, runs: list[dict]) -> str:
    """The guidance-interval table of docs/results/fidelity.md: the teacher sampled with guidance only for t ≤ t_hi
    (``bsa evaluate … eval.guidance_interval=[0,t_hi]``, one metrics JSON each in ``runs``) beside
    the teacher guided everywhere (``teacher``: its metrics on the same captions, noise and
    waveform path; its silence floor where they have one). Δ CLAP and Δ accuracy are paired per clip with their 95 % intervals; the
    per-head differences are of the means (the metrics JSON keeps no per-clip heads)."""

    def head(m: dict, name: str) -> str:
        return f"{m[f'acc_{name}'] - teacher[f'acc_{name}']:+.3f}"

    def paired(m: dict, k: str) -> str:
        fmt = "{:+.4f}" if "clap" in k else "{:+.3f}"
        return interval_cell(_interval(m[k], m[f"{k}_lo"], m[f"{k}_hi"]), fmt)

    lines = [
        "| guidance | NFE | Δ CLAP | Δ attribute acc | FAD vs teacher ÷ floor | Δ loudness | Δ background "
        "| FAD vs real | silence floor (dBFS) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| everywhere (the teacher) | {teacher['nfe']} | – | – | – | – | – | {teacher['fad_real']:.1f} | "
        + (f"{teacher['silence_floor_dbfs']:.0f} |" if "silence_floor_dbfs" in teacher else "– |"),
    ]
    for m in sorted(runs, key=lambda m: -m["protocol"]["guidance_interval"][1]):
        r = next(iter(m["results"].values()))
        lines.append(
            f"| t ≤ {m['protocol']['guidance_interval'][1]} | {r['nfe']} | "
            f"{paired(r, 'paired_clap_difference')} | {paired(r, 'paired_acc_difference')} | "
            f"{r['fad_teacher_ratio']:.2f} | {head(r, 'loudness')} | {head(r, 'background')} | "
            f"{r['fad_real']:.1f} | {r['silence_floor_dbfs']:.0f} |"
        )
    return "\n".join(lines)


def format_ablation(variants: list[tuple[str, dict]], steps=("200 guided", "50", "25", "4")) -> str:
    """The recipe ablation of docs/results/fidelity.md: one row per (variant, step count) that the variant reached,
    from each variant's fidelity summary (:func:`fidelity_summary`)."""

    lines = [
        "| recipe | steps | Δ CLAP | Δ attribute acc | FAD vs teacher | FAD / floor |",
        "|---|---|---|---|---|---|",
    ]
    for label, summary in variants:
        for key in steps:
            row = summary["steps"].get(key)
            if row is None:
                continue
            lines.append(
                f"| {label} | {key} | {interval_cell(row.get('clap_delta'), '{:+.4f}')} | "
                f"{interval_cell(row.get('attribute_acc_delta'), '{:+.4f}')} | "
                f"{interval_cell(row.get('fad_vs_teacher'), '{:.2f}')} | {interval_cell(row.get('fad_ratio'), '{:.2f}')} |"
            )
    return "\n".join(lines)


def ablation_table(folder) -> str:
    """:func:`format_ablation` of the variants listed in ``<folder>/variants.json``
    (``[{"label", "summary"}]``, summary paths relative to the folder)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    variants = json.loads((folder / "variants.json").read_text())
    return format_ablation([(v["label"], json.loads((folder / v["summary"]).read_text())) for v in variants])
