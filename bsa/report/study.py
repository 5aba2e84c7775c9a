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
from bsa.metrics.frechet import normal_interval, normal_quantile
from bsa.report.fidelity import interval_cell, pooled_estimate

if TYPE_CHECKING:
    import torch

STUDY_STEPS = (25, 4)
SCORES = {"clap": "clap", "acc_mean": "attribute_acc"}  # per-clip score in the records → summary key


def _interval(triple) -> dict[str, float]:
    mean, lo, hi = triple
    return {"mean": mean, "lo": lo, "hi": hi}


def is_resolved(interval: dict | None) -> bool:
    """A difference's 95 % interval ({mean, lo, hi}) excludes zero."""
    return bool(interval) and (interval["lo"] > 0 or interval["hi"] < 0)


def _family(label: str) -> dict | None:
    try:
        name, params = parse_weighting(label)
    except ValueError:
        return None
    point = family_point(name, **params)
    if point is None:
        return None
    return {k: ("inf" if math.isinf(v) else v) for k, v in zip(("floor", "gamma"), point, strict=True)}


def family_label(label: str) -> str:
    """A weighting as the study's tables name it: a point of the BSA family by its (floor, γ),
    anything else by its label."""
    f = _family(label)
    if not f:
        return label
    return f"({f['floor']:g}, {'∞' if f['gamma'] == 'inf' else format(f['gamma'], 'g')})"


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


def paired_fad_differences(comparisons: dict, reference: str = "bsa", blocks: bool = False) -> dict:
    """(weighting, steps) → the paired difference of FAD vs teacher to ``reference`` as
    {mean, lo, hi}, from the per-clip embeddings the runs kept (``eval.keep_embeddings``): per
    seed FD(w, teacher) − FD(reference, teacher) on shared half-samples
    (:func:`bsa.metrics.frechet.paired_frechet_difference`), pooled over seeds as
    :func:`pooled_estimate` does. ``comparisons``: comparison folder → its records (each run
    under ``<folder>/<run>``: two comparisons may hold runs of the same name). ``blocks``: each
    folder trained its own reference and teacher reference, and pairs within itself. Pairs
    without embeddings are left out."""
    return {
        key: _pooled_over_seeds(found)
        for key, found in paired_fad_per_seed(comparisons, reference, blocks).items()
    }


def _pooled_over_seeds(found: list) -> dict:
    """[(difference, standard error, seed)] (:func:`paired_fad_per_seed`) → {mean, lo, hi} pooled
    over the seeds (:func:`pooled_estimate`)."""
    return pooled_estimate([m for m, _, _ in found], [se for _, se, _ in found])


def paired_fad_per_seed(comparisons: dict, reference: str = "bsa", blocks: bool = False) -> dict:
    """(weighting, steps) → [(difference, its standard error, seed)] of :func:`paired_fad_differences`
    before it pools them over the seeds: the seeds whose embeddings are found here."""
    from bsa.metrics.frechet import HalfSampleReplicates, PairedFrechetDifferences

    # (weighting, steps, block, seed) → a student's embeddings; ("teacher", block, seed) → the teacher's
    found: dict[tuple, torch.Tensor] = {}
    for folder, records in comparisons.items():
        block = str(folder) if blocks else None
        for r in records:
            e = _embedding(Path(folder), r)
            if e is None:
                continue
            if r.get("mode") == "teacher":
                found["teacher", block, r["seed"]] = e
            elif r.get("mode") == "progressive":
                found[r["weighting"], r["steps"], block, r["seed"]] = e
    pairs: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
    replicates: dict[tuple, HalfSampleReplicates] = {}  # the teacher's, per (block, seed)
    # the reference student's side, per (steps, block, seed)
    against: dict[tuple, PairedFrechetDifferences] = {}
    students = sorted((k for k in found if len(k) == 4 and k[0] != reference), key=str)
    for w, n, block, seed in students:
        ref, teacher = found.get((reference, n, block, seed)), found.get(("teacher", block, seed))
        if ref is None or teacher is None:
            continue
        if (block, seed) not in replicates:
            replicates[block, seed] = HalfSampleReplicates(teacher, seed=seed)
        if (n, block, seed) not in against:
            against[n, block, seed] = PairedFrechetDifferences(ref, teacher, replicates[block, seed])
        pairs.setdefault((w, n), []).append(
            (*against[n, block, seed].difference(found[w, n, block, seed]), seed)
        )
    return pairs


def fad_differences_from(summary: dict) -> dict:
    """(weighting, steps) → (the paired FAD-vs-teacher difference a study summary holds, the seeds
    it covers): written where the runs' embeddings were (the GPU machine, which they never leave),
    for a summary computed again elsewhere (:func:`study_of_comparisons`)."""
    ref = summary["reference"]
    return {
        (w, int(n)): (row[f"diff_to_{ref}"]["fad_vs_teacher"], tuple(row["diff_seeds"]))
        for n, block in summary["steps"].items()
        for w, row in block.items()
        if "fad_vs_teacher" in row.get(f"diff_to_{ref}", {})
    }


def _study_summary_at(path, reference: str, what: str = "a study summary", read=lambda summary: summary):
    """``read`` of the study summary at ``path`` (its differences taken to ``reference``): a
    ValueError naming the path where it is not one (``what``), or is one to another reference."""
    import json

    try:
        summary = json.loads(Path(path).read_text())
        found, _ = summary["reference"], dict(summary["steps"])
        got = read(summary)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not {what} ({type(e).__name__}: {e})") from e
    if found != reference:
        raise ValueError(f"{path}: its paired differences are to {found}, not to {reference}")
    return got


def fad_differences_here_and_given(here: dict, parts: dict) -> dict:
    """(weighting, steps) → (paired FAD difference, the seeds it covers) from the seeds whose
    embeddings are found here (``here``: :func:`paired_fad_per_seed`) and those summaries bring
    (``parts``: :func:`pooled_fad_differences`) together: only here, pooled as
    :func:`paired_fad_differences` pools; otherwise every seed's once (a summary's seed that is also
    found here is taken from here: the same difference), pooled over all of them — a difference is
    never silently narrowed to the seeds one of the two holds (a study at home beside one seed's
    embeddings brought back, 2026-11-29)."""
    out = {}
    for key in sorted(set(here) | set(parts), key=str):
        found = here.get(key, [])
        seeds_here = {seed for _, _, seed in found}
        given = [p for p in parts.get(key, []) if not set(p[1]) <= seeds_here]
        if not given:
            out[key] = (_pooled_over_seeds(found), tuple(sorted(seeds_here)))
            continue
        # each seed's as its own summary holds it (:func:`pooled_estimate` of one seed): the same
        # figures as a study given that seed's device summary instead of its embeddings
        as_parts = [(_pooled_over_seeds([one]), (one[2],), "the embeddings here") for one in found]
        out[key] = pooled_fad_differences({key: given + as_parts})[key]
    return out


def pooled_fad_differences(parts: dict) -> dict:
    """(weighting, steps) → (interval, seeds) from several summaries' paired FAD differences
    (``parts``: (weighting, steps) → [(interval, seeds, path)], :func:`fad_differences_from`): one
    summary's as it is; several, each of one seed and no seed twice, pooled over the seeds as
    :func:`paired_fad_differences` pools them (each standard error read back from its normal 95 %
    interval). A ValueError where summaries overlap or hold pooled seeds, which cannot be pooled
    again."""
    out = {}
    for (w, n), found in parts.items():
        found = sorted(found, key=lambda part: part[1])  # by seed: the same sums whatever the order given
        if len(found) == 1:
            out[w, n] = found[0][:2]
            continue
        seeds = [s for _, covered, _ in found for s in covered]
        if any(len(covered) != 1 for _, covered, _ in found) or len(set(seeds)) != len(seeds):
            paths = ", ".join(str(p) for _, _, p in found)
            raise ValueError(
                f"{w} at {n} steps: paired FAD differences over seeds {seeds} in {paths}; "
                "give each seed's once, from a summary of that seed alone"
            )
        ses = [(d["hi"] - d["lo"]) / (2 * normal_quantile()) for d, _, _ in found]
        out[w, n] = (pooled_estimate([d["mean"] for d, _, _ in found], ses), tuple(seeds))
    return out


def study_of_comparisons(
    folders: list,
    reference: str = "bsa",
    fad_from: list = (),
    agree_with: list = (),
    fad_partial: bool = False,
) -> dict:
    """The study summary of comparison folders (:func:`study_summary`): their records, profiles and
    the paired FAD differences computable from the embeddings found here, pooled with those of
    ``fad_from`` (paths of earlier summary.json files, :func:`fad_differences_from`) for the seeds
    whose embeddings are not here (:func:`fad_differences_here_and_given`) — each for the very
    seeds the study pairs that weighting on (a ValueError otherwise), or, with ``fad_partial``, for
    some of them: the row then names the seeds its FAD difference covers (``fad_diff_seeds``; a
    seed whose embeddings were lost with its machine); with ``agree_with`` (other summaries' paths)
    the maps' agreement, ``agreement`` (:func:`agreements`)."""
    from bsa.report.records import comparison_profiles, comparison_records

    parts: dict[tuple, list] = {}
    for path in fad_from:
        for key, (interval, seeds) in _study_summary_at(path, reference, read=fad_differences_from).items():
            parts.setdefault(key, []).append((interval, seeds, path))

    by_folder, profiles, where, replicated = {}, [], {}, False
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
                if r["weighting"] != reference:
                    raise ValueError(
                        f"{r['weighting']} at {r['steps']} steps, seed {r['seed']}, is in {where[key]} and in "
                        f"{folder}: a study takes each student once (only {reference} may be run again, "
                        "beside the students of its own comparison)"
                    )
                replicated = True
    if replicated:  # every comparison a block with its own reference: differences taken within it
        for folder, records in by_folder.items():
            own = {(r["steps"], r["seed"]) for r in records if r.get("weighting") == reference}
            for r in records:
                if r.get("mode") == "progressive" and (r["steps"], r["seed"]) not in own:
                    raise ValueError(
                        f"{folder}: {r['weighting']} at {r['steps']} steps, seed {r['seed']}, has no {reference} "
                        f"of its own comparison to pair with ({reference} was run in several comparisons: "
                        "each pairs within itself)"
                    )
            by_folder[folder] = [r | {"block": str(folder)} for r in records]
    fad = fad_differences_here_and_given(paired_fad_per_seed(by_folder, reference, blocks=replicated), parts)
    records = [r for found in by_folder.values() for r in found]
    summary = study_summary(
        records, reference, profiles=profiles, fad_differences={k: v for k, (v, _) in fad.items()}
    )
    for n, block in summary["steps"].items():  # a difference covers the seeds paired here
        for w, row in block.items():
            key = (w, int(n))
            if key not in fad:
                continue
            covered, paired = sorted(fad[key][1]), sorted(row.get("diff_seeds", ()))
            if covered == paired:
                continue
            if fad_partial and set(covered) < set(paired):
                row["fad_diff_seeds"] = covered
                continue
            raise ValueError(
                f"{w} at {n} steps: the paired FAD difference (the runs' embeddings found here and the "
                f"--fad-differences summaries) covers seeds {covered}, "
                f"the study pairs seeds {row.get('diff_seeds')}; bring each seed's summary"
                + (
                    " (or, where a seed's embeddings are lost, --fad-partial)"
                    if set(covered) < set(paired)
                    else ""
                )
            )
    if fad_partial:  # recorded: the summary is computed again from its inputs the same way
        summary["fad_partial"] = True
    if agree_with:
        summary["agreement"] = agreements(summary, agree_with)
    return summary


def metric_intervals(records: list[dict]) -> dict[tuple[str, int], dict[str, dict[str, float]]]:
    """(weighting, steps) → {metric: {mean, lo, hi}} of every student's final records: CLAP and
    mean attribute accuracy from the per-clip scores (95 % bootstrap over seeds and captions),
    FAD vs teacher and its ratio to the floor from their half-sample standard errors pooled over
    seeds — the intervals the dashboard draws (they exist from one seed on, unlike a std over
    seeds). A weighting run again in another block (``block``: the reference of
    :func:`study_of_comparisons`) counts each run as a seed does."""
    import torch

    from bsa.metrics.paired import two_level_bootstrap_ci

    groups: dict[tuple[str, int], dict[tuple, dict]] = {}  # the latest record of each (block, seed)
    for r in records:
        if r.get("mode") == "progressive":
            groups.setdefault((r["weighting"], r["steps"]), {})[str(r.get("block")), r["seed"]] = r
    out = {}
    for key, by_unit in groups.items():
        recs = [by_unit[unit] for unit in sorted(by_unit)]
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


def replicate_differences(records: list[dict], weighting: str) -> dict:
    """steps → how far apart two training runs of ``weighting`` land on the same seed, captions and
    initial noise (it was run again in another block of :func:`study_of_comparisons`: another
    training run and another GPU run of the teacher's reference): each later block's run minus the
    first's, per clip for CLAP and attribute accuracy (95 % bootstrap over seeds and captions) and,
    unpaired, for FAD vs teacher (each against its own block's teacher; normal interval from both
    half-sample standard errors), with ``runs``, the most runs of one seed, and ``seeds``, the seeds
    run more than once (the only ones the differences cover). The run-to-run noise a difference
    between weightings has to stand out of. Empty where the weighting ran once."""
    import torch

    from bsa.metrics.paired import two_level_bootstrap_ci

    runs: dict[int, dict[int, dict[str, dict]]] = {}  # steps → seed → block (in the folders' order) → record
    for r in records:
        if r.get("mode") == "progressive" and r.get("weighting") == weighting and r.get("per_clip"):
            runs.setdefault(r["steps"], {}).setdefault(r["seed"], {})[str(r.get("block"))] = r
    out = {}
    for n, by_seed in runs.items():
        pairs = [
            (by_block[b], next(iter(by_block.values())))
            for _, by_block in sorted(by_seed.items())
            for b in list(by_block)[1:]
        ]
        if not pairs:
            continue
        row: dict = {
            "runs": max(len(by_block) for by_block in by_seed.values()),
            "seeds": [seed for seed, by_block in sorted(by_seed.items()) if len(by_block) > 1],
        }
        for score, key in SCORES.items():
            if all(score in a["per_clip"] and score in b["per_clip"] for a, b in pairs):
                a_, b_ = (torch.tensor([p[i]["per_clip"][score] for p in pairs]) for i in (0, 1))
                row[key] = _interval(two_level_bootstrap_ci(a_ - b_))
        m = [(a["metrics"], b["metrics"]) for a, b in pairs]
        if all(x.get("fad_teacher_se") is not None for pair in m for x in pair):
            row["fad_vs_teacher"] = pooled_estimate(
                [a["fad_teacher"] - b["fad_teacher"] for a, b in m],
                [math.hypot(a["fad_teacher_se"], b["fad_teacher_se"]) for a, b in m],
            )
        out[n] = row
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
    ``fad_vs_teacher`` to the paired differences. A reference run again in several blocks
    (:func:`study_of_comparisons`) has ``runs`` (all its runs, over seeds and blocks) and
    ``replicate_difference`` (:func:`replicate_differences`); its scores pool the runs."""
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
    runs: dict[tuple[str, int], set] = {}  # (weighting, steps) → its runs: (block, seed)
    for r in scored:
        runs.setdefault((r["weighting"], r["steps"]), set()).add((str(r.get("block")), r["seed"]))
    differences = weighting_differences(records, reference)
    replicates = replicate_differences(scored, reference)
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
            if w == reference and n in replicates:
                row["runs"] = len(runs[w, n])
                row["replicate_difference"] = replicates[n]
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
        "device": devices_of(scored),
    }


def devices_of(records: list[dict]) -> str | None:
    """Where the records were measured: the one device, or each device with its seeds in the order
    of its first seed ("NVIDIA H200 (seeds 1, 2); NVIDIA H100 80GB HBM3 (seed 5)")."""
    seeds: dict[str, set] = {}
    for r in records:
        device = (r.get("protocol") or {}).get("device")
        if device is not None:
            seeds.setdefault(device, set()).add(r["seed"])
    if len(seeds) <= 1:
        return next(iter(seeds), None)
    named = sorted(seeds.items(), key=lambda kv: min(kv[1]))
    return "; ".join(
        f"{d} (seed{'s' if len(s) > 1 else ''} {', '.join(str(x) for x in sorted(s))})" for d, s in named
    )


STUDY_SCORES = (  # (summary key, title, lower is better, format of a difference)
    ("clap", "CLAP", False, "{:+.4f}"),
    ("attribute_acc", "attribute acc", False, "{:+.4f}"),
    ("fad_vs_teacher", "FAD vs teacher", True, "{:+.2f}"),
)


def difference_seeds(row: dict, key: str) -> list:
    """The seeds a row's paired difference of score ``key`` covers: ``diff_seeds``, or for the FAD
    difference ``fad_diff_seeds`` where it covers fewer (:func:`study_of_comparisons`)."""
    if key == "fad_vs_teacher" and "fad_diff_seeds" in row:
        return row["fad_diff_seeds"]
    return row.get("diff_seeds", [])


def verdicts(summary: dict) -> list[dict]:
    """Where the reference wins, loses or ties, per step count and score: the weightings whose paired
    difference to it is resolved (95 % interval excluding zero) in its favour (``behind``: worse than
    the reference — lower CLAP or accuracy, higher FAD vs teacher) or against it (``ahead``), and how
    many of the weightings with a paired difference resolve neither way (``ties`` of ``compared``)."""
    ref, out = summary["reference"], []
    for n, block in summary["steps"].items():
        for key, title, lower_better, fmt in STUDY_SCORES:
            row = {
                "steps": int(n),
                "score": title,
                "format": fmt,
                "ahead": [],
                "behind": [],
                "ties": 0,
                "compared": 0,
            }
            for w, found in block.items():
                d = found.get(f"diff_to_{ref}", {}).get(key)
                if w == ref or not d:
                    continue
                row["compared"] += 1
                if is_resolved(d):
                    better = (d["mean"] < 0) == lower_better
                    row["ahead" if better else "behind"].append((w, d, difference_seeds(found, key)))
                else:
                    row["ties"] += 1
            if row["compared"]:
                out.append(row)
    return out


def best_point(summary: dict) -> dict | None:
    """The study's answer, by one fixed rule: of the weightings never resolved worse
    than the reference (any score, any step count they were measured at), the one resolved better
    most often (ties: the larger sum of its CLAP differences' means). ``change_default``: one of its
    wins holds over two seeds or more — a difference on one seed is of the size retraining alone
    moves a run (docs/results/weighting-study.md). None where every weighting resolved better somewhere
    is resolved worse somewhere else, or none is better anywhere."""
    ref = summary["reference"]
    wins: dict[str, list] = {}
    losses: set[str] = set()
    for v in verdicts(summary):
        for w, d, seeds in v["ahead"]:
            wins.setdefault(w, []).append(
                {
                    "steps": v["steps"],
                    "score": v["score"],
                    "format": v["format"],
                    "difference": d,
                    "seeds": seeds,
                }
            )
        losses |= {w for w, *_ in v["behind"]}
    candidates = [w for w in wins if w not in losses]
    if not candidates:
        return None

    def clap_sum(w: str) -> float:
        return sum(
            b.get(w, {}).get(f"diff_to_{ref}", {}).get("clap", {}).get("mean", 0.0)
            for b in summary["steps"].values()
        )

    best = max(candidates, key=lambda w: (len(wins[w]), clap_sum(w)))
    return {
        "weighting": best,
        "wins": wins[best],
        "measured_at": [int(n) for n, b in summary["steps"].items() if f"diff_to_{ref}" in b.get(best, {})],
        "change_default": any(len(win["seeds"]) >= 2 for win in wins[best]),
    }


def format_best_point(summary: dict) -> str:
    """:func:`best_point` in a sentence."""
    ref, best = summary["reference"], best_point(summary)
    if best is None:
        if any(v["ahead"] for v in verdicts(summary)):
            return f"Best: none — every weighting resolved better than {ref} somewhere is resolved worse elsewhere."
        return f"Best: none — no weighting is resolved better than {ref} anywhere."
    wins = "; ".join(
        f"{w['score']} at {w['steps']} steps {interval_cell(w['difference'], w['format'])}{seeds_note(w['seeds'])}"
        for w in best["wins"]
    )
    at = " and ".join(map(str, best["measured_at"]))
    verdict = "yes" if best["change_default"] else "not on this evidence (every win on one seed)"
    return (
        f"Best (never resolved worse than {ref}, most often resolved better): {family_label(best['weighting'])} — better in {wins}; "
        f"worse nowhere (measured at {at} steps). Change the default (a win over ≥ 2 seeds): {verdict}."
    )


def verdict_rows(summary: dict) -> tuple[list[str], list[list[str]], str]:
    """:func:`verdicts` as text cells — (header, rows, the line on chance) — for the markdown table
    (:func:`format_verdicts`) and the dashboard's: each resolved difference with its interval, a
    point of the BSA family by its (floor, γ), the seeds named where fewer than the study's."""
    ref, found = summary["reference"], verdicts(summary)

    def listed(side, fmt):
        return (
            "; ".join(
                f"{family_label(w)} {interval_cell(d, fmt)}"
                + (f" (seed {','.join(map(str, seeds))})" if seeds and seeds != summary["seeds"] else "")
                for w, d, seeds in side
            )
            or "–"
        )

    header = [
        "steps",
        "score",
        f"better than {ref} (resolved)",
        f"worse than {ref} (resolved)",
        "no resolved difference",
    ]
    rows = [
        [str(v["steps"]), v["score"], listed(v["ahead"], v["format"]), listed(v["behind"], v["format"]),
         f"{v['ties']} of {v['compared']}"]
        for v in found
    ]  # fmt: skip
    counts: dict[int, list[int]] = {}  # steps → [resolved, compared]
    for v in found:
        c = counts.setdefault(v["steps"], [0, 0])
        c[0] += len(v["ahead"]) + len(v["behind"])
        c[1] += v["compared"]
    chance = (
        "Resolved differences against those expected by chance alone were no weighting different from "
        f"{ref} (5 % of each): "
        + "; ".join(f"{n} steps {r} of {c} (by chance ~{0.05 * c:.1f})" for n, (r, c) in counts.items())
        + "."
    )
    return header, rows, chance


def format_verdicts(summary: dict) -> str:
    """:func:`verdict_rows` as a markdown table and its line on chance."""
    header, rows, chance = verdict_rows(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + ["", chance]) + "\n"


def seeds_note(seeds) -> str:
    """`` (seed 2)``, `` (seeds 1,2)``: the seeds a difference covers, after it; "" for none."""
    return f" (seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))})" if seeds else ""


def format_study(summary: dict) -> str:
    """The weighting study's table (docs/results/weighting-study.md, summary.md): one row per
    (step count, weighting); ✓ marks a paired difference whose interval excludes zero. A
    reference run more than once has a row of its runs' differences beneath it."""
    ref = summary["reference"]

    def cell(v, fmt="{:.4f}", mark=False):
        return interval_cell(v, fmt) + (" ✓" if mark and is_resolved(v) else "")

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
            seeds = ",".join(map(str, row["seeds"])) + (f" ({row['runs']} runs)" if "runs" in row else "")
            lines.append(
                f"| {n} | {w} | {family_label(w) if row.get('family') else '–'} | {seeds} | "
                f"{cell(row.get('clap'))} | {cell(row.get('attribute_acc'))} | "
                f"{cell(row.get('fad_vs_teacher'), '{:.2f}')} | "
                f"{cell(d.get('clap'), '{:+.4f}', True) if w != ref else 'reference'} | "
                f"{cell(d.get('attribute_acc'), '{:+.4f}', True) if w != ref else 'reference'} | "
                f"{cell(d.get('fad_vs_teacher'), '{:+.2f}', True) if w != ref else 'reference'}"
                f"{seeds_note(row.get('fad_diff_seeds'))} | "  # a FAD difference of fewer seeds
                f"{share(row)} |"
            )
            if "replicate_difference" in row:  # the run-to-run noise, in the columns of the differences
                r = row["replicate_difference"]
                later = "run 2" if r["runs"] == 2 else f"runs 2–{r['runs']}"
                lines.append(
                    f"| {n} | {w}: {later} − run 1 | – | {','.join(map(str, r['seeds']))} | – | – | – | "
                    f"{cell(r.get('clap'), '{:+.4f}', True)} | {cell(r.get('attribute_acc'), '{:+.4f}', True)} | "
                    f"{cell(r.get('fad_vs_teacher'), '{:+.2f}', True)} (unpaired) | – |"
                )
    lines += [
        "",
        f"Resolved differences to {ref} (95 % intervals that exclude zero):",
        "",
        format_verdicts(summary).rstrip(),
        "",
        format_best_point(summary),
    ]
    for a in summary.get("agreement", []):
        cells = [
            f"{title} {a[key]['r']:.2f} [{a[key]['lo']:.2f}, {a[key]['hi']:.2f}]"
            for key, title in AGREEMENT_KEYS.items()
            if key in a
        ]
        points = max(a[key]["points"] for key in AGREEMENT_KEYS if key in a)
        lines += [
            "",
            f"Agreement with {a['with']} at {a['steps']} steps — Pearson r of the {points} weightings' differences "
            f"to {ref} (unpaired where a summary has no paired one), 95 % Fisher-z interval: "
            + "; ".join(cells),
        ]
    return "\n".join(lines) + "\n"


def map_agreement(first: dict, second: dict, key: str, steps: int = 25) -> dict | None:
    """How far two study summaries (say two seeds) draw the same map: the Pearson correlation, over
    the weightings both hold at ``steps`` (the reference left out), of each weighting's difference
    to the reference in ``key`` (``clap``, ``attribute_acc``, ``fad_vs_teacher``) — the paired
    difference where the summary has it, else the difference of the two means (FAD vs teacher
    without the runs' embeddings) — with a 95 % interval from Fisher's z (z = atanh r, standard error
    1/√(n − 3); Fisher 1921). {"points", "r", "lo", "hi"}; None below 4 common points or without
    spread."""
    import statistics

    def differences(summary: dict) -> dict[str, float]:
        ref, block = summary["reference"], summary["steps"].get(str(steps), {})
        out = {}
        for w, row in block.items():
            paired = row.get(f"diff_to_{ref}", {}).get(key)
            if paired:
                out[w] = paired["mean"]
            elif w != ref and row.get(key) and block.get(ref, {}).get(key):
                out[w] = row[key]["mean"] - block[ref][key]["mean"]
        return out

    a, b = differences(first), differences(second)
    common = sorted(set(a) & set(b))
    if len(common) < 4:
        return None
    x, y = [a[w] for w in common], [b[w] for w in common]
    if statistics.pstdev(x) == 0 or statistics.pstdev(y) == 0:
        return None
    r = statistics.correlation(x, y)
    lo, hi = normal_interval(math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), 1 / math.sqrt(len(common) - 3))
    return {"points": len(common), "r": r, "lo": math.tanh(lo), "hi": math.tanh(hi)}


AGREEMENT_KEYS = {key: title for key, title, _, _ in STUDY_SCORES}


def agreements(summary: dict, others: list) -> list[dict]:
    """Per other study summary (paths: say the map of another seed) and step count of ``summary``:
    how far the two maps agree (:func:`map_agreement`) in each of :data:`AGREEMENT_KEYS`, as
    {"with", "steps", <key>: {"points", "r", "lo", "hi"}}."""
    out = []
    for path in others:
        other = _study_summary_at(path, summary["reference"], "a study summary to compare with")
        for row in [{"with": str(path), "steps": int(n)} for n in summary["steps"] if n in other["steps"]]:
            for key in AGREEMENT_KEYS:
                found = map_agreement(summary, other, key, row["steps"])
                if found:
                    row[key] = found
            if len(row) > 2:
                out.append(row)
    return out
