"""The weighting study's summary (issue "A weighting study that can tell weightings apart"): for
the student step counts of the study and every weighting of one or more comparisons, the scores
with their 95 % intervals and the paired difference to the reference weighting (``bsa``).

Read from the comparisons' ``eval.jsonl`` records only: each student's final record keeps its
per-clip CLAP and attribute accuracy (every weighting ran on the same seeds, captions and initial
noise, so differences are paired clip by clip) and its FAD against the teacher with the
half-sample standard error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from bsa.config import parse_weighting
from bsa.diffusion.weighting import family_point
from bsa.report.fidelity import interval_cell, pooled_estimate

if TYPE_CHECKING:
    import torch

STUDY_STEPS = (25, 4)
SCORES = {"clap": "clap", "acc_mean": "attribute_acc"}  # per-clip score in the records → summary key


def _interval(triple) -> dict[str, float]:
    mean, lo, hi = triple
    return {"mean": mean, "lo": lo, "hi": hi}


def _family(label: str) -> dict | None:
    try:
        name, params = parse_weighting(label)
    except ValueError:
        return None
    point = family_point(name, **params)
    if point is None:
        return None
    return {k: ("inf" if math.isinf(v) else v) for k, v in zip(("floor", "gamma"), point, strict=True)}


def low_noise_shares(profile: dict) -> dict | None:
    """Of a stage's end-of-stage error profile (``profiles.jsonl``): the share of the weighted loss
    and of its gradient norm that the student steps with SNR > 1 carry — where the weightings
    differ most (issue "A weighting study…": with the ε-student it was 0.2 % of the loss)."""
    rows = profile.get("profile") or []
    if not rows:
        return None
    low = [r for r in rows if r["snr"] > 1]
    out = {"steps": len(low), "of": len(rows), "loss": sum(r["share"] for r in low)}
    if all("grad_share" in r for r in rows):
        out["gradient"] = sum(r["grad_share"] for r in low)
    return out


def _embedding(folder: Path, record: dict) -> torch.Tensor | None:
    from bsa.report.records import record_embedding

    return record_embedding(folder / record["run"], record)


def paired_fad_differences(comparisons: dict, reference: str = "bsa") -> dict:
    """(weighting, steps) → the paired difference of FAD vs teacher to ``reference`` as
    {mean, lo, hi}, from the per-clip embeddings the runs kept (``eval.keep_embeddings``): per
    seed FD(w, teacher) − FD(reference, teacher) on shared half-samples
    (:func:`bsa.metrics.frechet.paired_frechet_difference`), pooled over seeds as
    :func:`pooled_estimate` does. ``comparisons``: comparison folder → its records (each run
    under ``<folder>/<run>``: two comparisons may hold runs of the same name). Pairs without
    embeddings are left out."""
    from bsa.metrics.frechet import paired_frechet_difference

    found: dict[tuple, torch.Tensor] = {}  # (weighting, steps, seed) → embedding; ("teacher", seed)
    for folder, records in comparisons.items():
        for r in records:
            e = _embedding(Path(folder), r)
            if e is None:
                continue
            if r.get("mode") == "teacher":
                found["teacher", r["seed"]] = e
            elif r.get("mode") == "progressive":
                found[r["weighting"], r["steps"], r["seed"]] = e
    out = {}
    pairs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for w, n, seed in sorted(k for k in found if len(k) == 3 and k[0] != reference):
        ref, teacher = found.get((reference, n, seed)), found.get(("teacher", seed))
        if ref is None or teacher is None:
            continue
        pairs.setdefault((w, n), []).append(
            paired_frechet_difference(found[w, n, seed], ref, teacher, seed=seed)
        )
    for key, values in pairs.items():
        out[key] = pooled_estimate([m for m, _ in values], [se for _, se in values])
    return out


def fad_differences_from(summary: dict) -> dict:
    """(weighting, steps) → the paired FAD-vs-teacher difference a study summary holds (written
    where the runs' embeddings were: the GPU machine, which they never leave), for a summary
    computed again elsewhere (:func:`study_of_comparisons`)."""
    ref = summary["reference"]
    return {
        (w, int(n)): row[f"diff_to_{ref}"]["fad_vs_teacher"]
        for n, block in summary["steps"].items()
        for w, row in block.items()
        if "fad_vs_teacher" in row.get(f"diff_to_{ref}", {})
    }


def study_of_comparisons(folders: list, reference: str = "bsa", fad_from: list = ()) -> dict:
    """The study summary of comparison folders (:func:`study_summary`): their records, profiles and
    the paired FAD differences computable from the embeddings found here, completed by those of
    ``fad_from`` (paths of earlier summary.json files, :func:`fad_differences_from`) where the
    embeddings are not."""
    import json

    from bsa.report.records import comparison_profiles, comparison_records

    fad = {}
    for path in fad_from:
        try:
            earlier = json.loads(Path(path).read_text())
            fad.update(fad_differences_from(earlier))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a study summary ({type(e).__name__}: {e})") from e
        if earlier["reference"] != reference:
            raise ValueError(
                f"{path}: its paired differences are to {earlier['reference']}, not to {reference}"
            )

    by_folder, profiles, where = {}, [], {}
    for folder in folders:
        profiles += comparison_profiles(folder)
        by_folder[folder] = comparison_records(folder)
        if not by_folder[folder]:
            raise ValueError(f"{folder}: no */eval.jsonl records (not a comparison folder?)")
        for r in by_folder[folder]:  # one student per (weighting, steps, seed): none silently replaced
            if r.get("mode") != "progressive":
                continue
            key = (r["weighting"], r["steps"], r["seed"])
            if where.setdefault(key, folder) != folder:
                raise ValueError(
                    f"{r['weighting']} at {r['steps']} steps, seed {r['seed']}, is in {where[key]} and in "
                    f"{folder}: a study takes each student once"
                )
    fad.update(paired_fad_differences(by_folder, reference))
    records = [r for found in by_folder.values() for r in found]
    return study_summary(records, reference, profiles=profiles, fad_differences=fad)


def metric_intervals(records: list[dict]) -> dict[tuple[str, int], dict[str, dict[str, float]]]:
    """(weighting, steps) → {metric: {mean, lo, hi}} of every student's final records: CLAP and
    mean attribute accuracy from the per-clip scores (95 % bootstrap over seeds and captions),
    FAD vs teacher and its ratio to the floor from their half-sample standard errors pooled over
    seeds — the intervals the dashboard draws (they exist from one seed on, unlike a std over
    seeds)."""
    import torch

    from bsa.metrics.paired import two_level_bootstrap_ci

    groups: dict[tuple[str, int], dict[int, dict]] = {}  # the latest record of each seed
    for r in records:
        if r.get("mode") == "progressive":
            groups.setdefault((r["weighting"], r["steps"]), {})[r["seed"]] = r
    out = {}
    for key, by_seed in groups.items():
        recs = [by_seed[seed] for seed in sorted(by_seed)]
        row = {}
        for score in SCORES:
            if all(score in (r.get("per_clip") or {}) for r in recs):
                row[score] = _interval(
                    two_level_bootstrap_ci(torch.tensor([r["per_clip"][score] for r in recs]))
                )
        for metric in ("fad_teacher", "fad_teacher_ratio"):
            m = [r["metrics"] for r in recs]
            if all(metric in x for x in m):  # None where a seed has no standard error
                row[metric] = pooled_estimate([x[metric] for x in m], [x.get(f"{metric}_se") for x in m])
        out[key] = row
    return out


def study_summary(
    records: list[dict],
    reference: str = "bsa",
    steps=STUDY_STEPS,
    profiles: list[dict] | None = None,
    fad_differences: dict | None = None,
) -> dict:
    """``records``: the final records of the comparisons' runs (:func:`comparison_records`). Per
    step count of ``steps`` that the records reach and per weighting label: ``clap`` and
    ``attribute_acc`` (the mean per-clip score, 95 % bootstrap over seeds and captions),
    ``fad_vs_teacher`` (normal 95 % interval from the half-sample standard errors and the spread
    over seeds), the weighting's place on the BSA family's map (``family``: floor, γ; None off
    the map), ``diff_to_<reference>``: the paired difference of each score to the reference, and
    with ``profiles`` (:func:`comparison_profiles`) ``low_noise_share`` per seed
    (:func:`low_noise_shares`); ``fad_differences`` (:func:`paired_fad_differences`) add
    ``fad_vs_teacher`` to the paired differences."""
    from bsa.report.records import check_one_measurement
    from bsa.report.tables import weighting_differences

    check_one_measurement(records)
    scored = [r for r in records if r.get("mode") == "progressive" and r.get("per_clip")]
    students: dict[tuple[str, int], dict[int, dict]] = {}
    for r in scored:
        students.setdefault((r["weighting"], r["steps"]), {})[r["seed"]] = r
    if not students:
        raise ValueError("no progressive student records with per-clip scores")
    intervals = metric_intervals(scored)
    differences = weighting_differences(records, reference)
    out: dict[str, dict] = {}
    for n in steps:
        labels = sorted({w for (w, m) in students if m == n}, key=lambda w: (w != reference, w))
        if not labels:
            continue
        block = {}
        for w in labels:
            row: dict = {"seeds": sorted(students[w, n]), "family": _family(w)}
            ci = intervals[w, n]
            row.update({key: ci[score] for score, key in SCORES.items() if score in ci})
            if "fad_teacher" in ci:
                row["fad_vs_teacher"] = ci["fad_teacher"]
            if w != reference and (w, n) in differences:
                d = differences[w, n]
                row[f"diff_to_{reference}"] = {SCORES[k]: _interval(d[k]) for k in SCORES if k in d}
                row["diff_seeds"] = d["seeds"]
                if (fad_differences or {}).get((w, n)):
                    row[f"diff_to_{reference}"]["fad_vs_teacher"] = fad_differences[w, n]
            shares = [
                low_noise_shares(p)
                for p in profiles or []
                if p.get("weighting") == w and p.get("steps") == n and p.get("mode") == "progressive"
            ]
            if shares and all(shares):
                row["low_noise_share"] = shares
            block[w] = row
        out[str(n)] = block
    any_record = next(iter(next(iter(students.values())).values()))
    protocol = any_record.get("protocol", {})
    return {
        "steps": out,
        "not_reached": [n for n in steps if str(n) not in out],
        "reference": reference,
        "seeds": sorted({s for v in students.values() for s in v}),
        "captions": protocol.get("num_clips"),
        "device": protocol.get("device"),
    }


def format_study(summary: dict) -> str:
    """The README's and summary.md's table: one row per (step count, weighting); ✓ marks a paired
    difference whose interval excludes zero."""
    ref = summary["reference"]

    def cell(v, fmt="{:.4f}", mark=False):
        resolved = mark and v and (v["lo"] > 0 or v["hi"] < 0)
        return interval_cell(v, fmt) + (" ✓" if resolved else "")

    def family(f):
        return (
            "–" if not f else f"({f['floor']:g}, {'∞' if f['gamma'] == 'inf' else format(f['gamma'], 'g')})"
        )

    def share(row):
        shares = row.get("low_noise_share")
        if not shares:
            return "–"
        loss = sum(x["loss"] for x in shares) / len(shares)
        grads = [x["gradient"] for x in shares if "gradient" in x]
        return f"{loss:.3f}" + (f" / {sum(grads) / len(grads):.3f}" if grads else "")

    lines = [
        f"| steps | weighting | (floor, γ) | seeds | CLAP | attribute acc | FAD vs teacher | Δ CLAP vs {ref} | "
        f"Δ attribute acc vs {ref} | Δ FAD vs teacher vs {ref} | SNR > 1: loss / gradient share |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, block in summary["steps"].items():
        for w, row in block.items():
            d = row.get(f"diff_to_{ref}", {})
            lines.append(
                f"| {n} | {w} | {family(row.get('family'))} | {','.join(map(str, row['seeds']))} | "
                f"{cell(row.get('clap'))} | {cell(row.get('attribute_acc'))} | "
                f"{cell(row.get('fad_vs_teacher'), '{:.2f}')} | "
                f"{cell(d.get('clap'), '{:+.4f}', True) if w != ref else 'reference'} | "
                f"{cell(d.get('attribute_acc'), '{:+.4f}', True) if w != ref else 'reference'} | "
                f"{cell(d.get('fad_vs_teacher'), '{:+.2f}', True) if w != ref else 'reference'} | {share(row)} |"
            )
    return "\n".join(lines) + "\n"
