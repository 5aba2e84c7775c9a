"""The tables and figures of the README and docs/ that are generated from committed results match them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _helpers import documentation

REPO = Path(__file__).resolve().parents[1]


def prose(text: str) -> str:
    """A figure as the README's prose writes it: the typographic minus."""
    return text.replace("-", "−")


def prose_interval(d: dict, spec: str) -> str:
    """A {mean, lo, hi} figure as the README's prose writes it: "mean [lo, hi]" in ``spec``."""
    return prose(f"{d['mean']:{spec}} [{d['lo']:{spec}}, {d['hi']:{spec}}]")


def test_readme_recipe_table_is_the_one_generated_from_its_summary():
    sys.path.insert(0, str(REPO / "experiments" / "gpu"))
    try:
        from summarise_recipes import table
    finally:
        sys.path.pop(0)
    summary = json.loads((REPO / "results/teacher-recipes-2026-11-27/summary.json").read_text())
    assert table(summary) in documentation()


def test_readme_fidelity_tables_are_the_ones_generated_from_their_summaries():
    from bsa.report.fidelity import ablation_table, format_fidelity

    readme = documentation()
    summary = json.loads((REPO / "results/fidelity/summary.json").read_text())
    table = format_fidelity(summary).split("\n\n", 1)[1].strip()
    assert table in readme
    assert ablation_table(REPO / "results/fidelity-ablation") in readme
    for earlier in ("summary-griffin-lim.json", "summary-1954.json"):  # seeds 0–2, seed 0 aligned
        earlier = json.loads((REPO / "results/fidelity/reruns" / earlier).read_text())
        assert format_fidelity(earlier).split("\n\n", 1)[1].strip() in readme
    # the figures are the benchmark's: every step count on three seeds, through the vocoder,
    # and the summary is what its committed records give (nothing edited by hand)
    from bsa.report.fidelity import fidelity_summary
    from bsa.report.records import final_records, measurement

    runs = [final_records(REPO / run / "eval.jsonl") for run in summary["runs"]]
    assert all(measurement(records[0])["waveform"].startswith("MagnitudeVocoder") for records in runs)
    assert all(row["seeds"] == [0, 1, 2] for row in summary["steps"].values()) and len(summary["steps"]) == 9
    assert json.loads(json.dumps(fidelity_summary(runs)["steps"])) == summary["steps"]
    # the schema: every figure as {mean, lo, hi}, and the protocol beside them
    assert {"captions", "seeds", "device", "date", "command"} <= set(summary)
    for row in summary["steps"].values():
        for key in ("clap_delta", "attribute_acc_delta", "fad_vs_teacher", "fad_floor"):
            assert (
                set(row[key]) == {"mean", "lo", "hi"} and row[key]["lo"] <= row[key]["mean"] <= row[key]["hi"]
            )


@pytest.mark.parametrize(
    "path, in_readme",
    [
        ("results/weighting-study/summary.json", True),  # the map, vocoder, seeds 1–6, 25 and 4 steps
        ("results/weighting-study/map-seed1-vocoder-2026-11-29/summary.json", True),  # seed 1: two halves
        ("results/weighting-study/map-seed1-2026-11-29/summary.json", False),  # its first half
        ("results/weighting-study/map-seed1-2026-11-29-part2/summary.json", False),  # its second half
        ("results/weighting-study/map-seed2-2026-11-29/summary.json", False),  # seed 2: 9 points, 25 and 4
        ("results/weighting-study/map-seed3-2026-11-29/summary.json", False),  # seed 3: all 17, 25 and 4
        ("results/weighting-study/map-seed4-2026-11-29/summary.json", False),  # seed 4: 17 at 25, 8 at 4
        ("results/weighting-study/map-seed5-h100-2026-12-07/summary.json", False),  # seed 5: 17 at 25, H100
        ("results/weighting-study/map-seed6-h100-2026-12-08/summary.json", False),  # seed 6: 17 at 25, H100
        ("results/weighting-study/against-0.1-20/summary.json", False),  # seeds 2–4 to the new default
        ("results/weighting-study/lownoise-grid2-seed4-2026-11-29/summary.json", True),  # ρ = 2, 9 points
        ("results/weighting-study/lownoise-grid2-seed4-2026-11-29/against-0.1-20/summary.json", False),
        ("results/weighting-study/map-seed0-2026-11-28/summary.json", True),  # the map, seed 0, Griffin-Lim
        ("results/weighting-study/comparison-25steps-seed0/summary.json", True),  # the five named weightings
    ],
)
def test_readme_weighting_study_tables_are_the_ones_generated_from_their_summaries(path, in_readme):
    from bsa.report.study import format_study, study_of_comparisons

    summary = json.loads((REPO / path).read_text())
    if in_readme:
        assert format_study(summary).strip() in documentation()
    # the summary is what its records give (nothing edited by hand); the paired FAD differences
    # from the summary written on the GPU machine, where the embeddings are
    again = study_of_comparisons(
        [REPO / c for c in summary["comparisons"]],
        summary["reference"],
        fad_from=[REPO / f for f in summary.get("fad_differences", [])],
        agree_with=list(
            dict.fromkeys(REPO / a["with"] for a in summary.get("agreement", []))
        ),  # one per step count
        fad_partial=summary.get("fad_partial", False),
    )
    assert again["steps"] == summary["steps"]
    figures = [{k: v for k, v in a.items() if k != "with"} for a in summary.get("agreement", [])]
    assert [{k: v for k, v in a.items() if k != "with"} for a in again.get("agreement", [])] == figures
    assert {"seeds", "captions", "device", "date", "command"} <= set(summary)
    page = (REPO / path).with_name("map.html")  # the (floor, γ) heat maps: what bsa study writes
    if page.exists():
        from bsa.report.dashboard import study_maps

        assert page.read_text() == study_maps(summary)
    ref = summary["reference"]
    for block in summary["steps"].values():
        for w, row in block.items():
            for key in ("clap", "attribute_acc", "fad_vs_teacher") + (
                (f"diff_to_{ref}",) if w != ref else ()
            ):
                assert row[key], (w, key)


def test_readme_graph_tables_are_the_ones_generated_from_their_records():
    from bsa.report.bench import probe_table, sampling_table, training_table

    folder = REPO / "results/bench/2026-11-27-graphs"
    readme = documentation()
    assert training_table(json.loads((folder / "training.json").read_text())) in readme
    assert probe_table(folder) in readme
    regional = json.loads((REPO / "results/bench/2026-11-28-regional/regional.json").read_text())
    assert "\n".join("  " + line for line in training_table(regional).splitlines()) in readme
    for run in ("2026-11-28-sampling", "2026-11-28-loop-graphs"):
        sampling = json.loads((REPO / f"results/bench/{run}/sampling.json").read_text())
        assert sampling_table(sampling) in readme, run
    from bsa.report.bench import ddp_table

    h100 = (
        REPO / "results/bench/2026-12-08-training-185m-h100"
    )  # the levers, then the best setting cold and cached
    assert training_table(json.loads((h100 / "levers.json").read_text())) in readme
    calls = ("baseline", "regional-lpnorm-cold", "regional-lpnorm-cached", "channels-last")
    rows = [row for f in calls for row in json.loads((h100 / f"{f}.json").read_text())["training"]]
    assert training_table({"training": rows}) in readme
    ddp = sorted((REPO / "results/bench/2026-11-28-ddp").glob("bucket*/ddp*.json"))
    assert len(ddp) == 6 and ddp_table([json.loads(f.read_text()) for f in ddp]) in readme
    # the speed issue's figures are the ones its command derives from those two runs
    from bsa.report.bench import merge_bench_runs, speed_summary

    speed = json.loads((REPO / "results/speed/summary.json").read_text())
    runs = [json.loads((REPO / p).read_text()) for p in speed["bench"]]
    assert {k: v for k, v in speed_summary(merge_bench_runs(runs)).items()} == {
        k: v for k, v in speed.items() if k not in ("command", "bench", "runs")
    }


def test_readme_min_snr_fad_differences_are_those_of_the_earlier_summary():
    """The Δ FAD of Min-SNR against BSA (seed 0) needs embeddings that were not committed: the README
    quotes it from the earlier summary that computed it, and must quote it as that summary has it."""
    earlier = json.loads((REPO / "results/fidelity/reruns/summary-0949.json").read_text())
    rows = earlier["differences"]["steps"]
    readme = " ".join(documentation().split())

    def cell(key):
        return prose_interval(rows[key]["fad_vs_teacher_delta"], "+.2f")

    assert f"{cell('25')} at 25 steps, {cell('4')} at 4 and {cell('2')} at 2." in readme


def test_readme_attribute_shift_figures_are_those_of_the_committed_records():
    """The README's "where the gain sits" figures: per-head differences and FAD vs real of the
    three-seed Min-SNR runs, the vocoder runs and the BSA run of the ablation."""
    from bsa.report.fidelity import attribute_shift
    from bsa.report.records import final_records

    def shift(*runs):
        return attribute_shift([final_records(REPO / run / "eval.jsonl") for run in runs])

    f = "results/fidelity"
    vocoder = shift(*(f"{f}/vocoder-2026-11-29/runs/s{s}" for s in range(3)))["25"]
    griffin_lim = shift(f"{f}/runs/g4800-minsnr", f"{f}/runs/s1", f"{f}/runs/s2")["25"]
    bsa = shift("results/fidelity-ablation/g4800/run")["25"]
    readme = " ".join(documentation().split())
    assert (
        f"loudness (+{vocoder['acc_loudness']['mean']:.3f} at 25 steps) and background (+{vocoder['acc_background']['mean']:.3f})"
        in readme
    )
    assert all(abs(vocoder[f"acc_{h}"]["mean"]) < 0.01 for h in ("source", "pitch", "rhythm"))
    assert (
        f"(FAD vs real {vocoder['fad_real_teacher']['mean']:.1f} → {vocoder['fad_real']['mean']:.1f} at 25 steps; "
        f"through Griffin-Lim {griffin_lim['fad_real_teacher']['mean']:.1f} → {griffin_lim['fad_real']['mean']:.1f})"
        in readme
    )
    loud = prose(f"{bsa['acc_loudness']['mean']:.3f}")
    assert (
        f"loudness {loud}, FAD vs real {bsa['fad_real_teacher']['mean']:.1f} → {bsa['fad_real']['mean']:.1f} at 25 steps"
        in readme
    )


def test_readme_guidance_interval_table_is_the_one_of_its_metrics_beside_the_students():
    """The README's test of "the students leave guidance out at the noisiest steps": the table of
    the teacher sampled with guidance only below t_hi (results/guidance-interval-2026-11-29) against
    the teacher record of the vocoder runs, and the students' figures it is read against (200
    guided, seeds 0–2 through the vocoder)."""
    from bsa.report.fidelity import attribute_shift, format_guidance_interval
    from bsa.report.records import final_records

    runs = [
        final_records(REPO / f"results/fidelity/vocoder-2026-11-29/runs/s{s}/eval.jsonl") for s in range(3)
    ]
    teacher = next(r for r in runs[0] if r["mode"] == "teacher")["metrics"]
    # the same teacher, captions, noise and vocoder in the benchmark's teacher table: its silence floor
    table = json.loads((REPO / "results/teacher-vocoder-2026-11-28/metrics.json").read_text())
    assert table["results"]["model @ 200 steps"]["clap"] == pytest.approx(teacher["clap"], abs=1e-6)
    teacher = teacher | {"silence_floor_dbfs": table["results"]["model @ 200 steps"]["silence_floor_dbfs"]}
    metrics = [
        json.loads(p.read_text())
        for p in (REPO / "results/guidance-interval-2026-11-29").glob("metrics-t*.json")
    ]
    assert len(metrics) == 3
    readme = documentation()
    assert format_guidance_interval(teacher, metrics) in readme
    from bsa.data.embedded import caption_labels
    from bsa.report.fidelity import accuracy_by_label, format_accuracy_by_label

    labels = caption_labels(0, "test", 1000, ("loudness", "background"))
    by_label = format_accuracy_by_label(accuracy_by_label(runs[:1], labels), ("200 guided", "25", "4", "1"))
    assert by_label in readme  # seed 0: the one run whose records keep each head per clip
    student = attribute_shift(runs)["200 guided"]
    flat = " ".join(readme.split())
    assert (
        f"gain +{student['acc_loudness']['mean']:.3f} in loudness and +{student['acc_background']['mean']:.3f} in "
        f"background and go {student['fad_real_teacher']['mean']:.1f} → {student['fad_real']['mean']:.1f} in FAD vs real"
        in flat
    )


def test_readme_rerun_differences_are_those_of_the_committed_records():
    """The README's "a rerun of a seed is not bit-identical" figures: the largest difference between
    any two committed runs of one seed (results/fidelity/runs and results/fidelity/reruns/<seed>-<time>),
    over the stages both reached, between runs scored the same way (seed 0's chain of 19:54 on
    2026-11-28, scored through the aligned Griffin-Lim, is compared with none)."""
    from itertools import combinations

    from bsa.report.records import final_records, measurement

    def final(path):
        return {r["stage"]: r["metrics"] for r in final_records(path) if r["stage"] >= 0}

    fidelity = REPO / "results/fidelity"
    runs = {
        "s0": [fidelity / "runs/g4800-minsnr"],
        "s1": [fidelity / "runs/s1"],
        "s2": [fidelity / "runs/s2"],
    }
    for rerun in sorted((fidelity / "reruns").iterdir()):
        if rerun.is_dir():
            runs[rerun.name.split("-")[0]].append(rerun)
    biggest = {"clap": 0.0, "acc_mean": 0.0, "fad_teacher": 0.0}
    stages, pairs = set(), 0

    def measured(path):  # runs scored through another waveform path are other measurements
        return json.dumps(measurement(final_records(path)[0]), sort_keys=True)

    for seed_runs in runs.values():
        for x, y in combinations(seed_runs, 2):
            if measured(x / "eval.jsonl") != measured(y / "eval.jsonl"):
                continue
            a, b = final(x / "eval.jsonl"), final(y / "eval.jsonl")
            pairs += 1
            stages |= set(a) & set(b)
            for stage in set(a) & set(b):
                for k in biggest:
                    biggest[k] = max(biggest[k], abs(a[stage][k] - b[stage][k]))
    # seed 0 four times the first way (a fifth time through the aligned Griffin-Lim), seeds 1 and 2
    # five times: 6 + 10 + 10 pairs; 200 (guided) down to 2 steps
    assert pairs == 26 and stages == set(range(8))
    readme = documentation()
    assert (
        f"most {biggest['clap']:.4f} CLAP, {biggest['acc_mean']:.4f} attribute accuracy and "
        f"{biggest['fad_teacher']:.2f} FAD vs teacher" in " ".join(readme.split())
    )
    # through the vocoder: each seed's first run (to 100 steps) against the run of the table
    vocoder = REPO / "results/fidelity/vocoder-2026-11-29"
    biggest = dict.fromkeys(biggest, 0.0)
    for seed in ("s0", "s1", "s2"):
        a, b = (
            final(vocoder / "runs" / seed / "eval.jsonl"),
            final(vocoder / "reruns" / f"{seed}-first" / "eval.jsonl"),
        )
        assert set(a) & set(b) == {0, 1}
        for stage in (0, 1):
            for k in biggest:
                biggest[k] = max(biggest[k], abs(a[stage][k] - b[stage][k]))
    assert (
        f"at most {biggest['clap']:.4f} CLAP, {biggest['acc_mean']:.4f} attribute accuracy and "
        f"{biggest['fad_teacher']:.2f} FAD vs teacher." in " ".join(readme.split())
    )


def test_no_result_record_is_ignored_by_git():
    """.gitignore's `runs/` matched every folder of that name, results/fidelity/runs/ included: the
    records behind results/fidelity/summary.json were never committed, and a fresh clone could not
    check the README against them. Nothing under results/ may be ignored but the runs' per-clip
    embeddings brought home (``results/**/embeddings/``: their paired FAD differences are kept in
    each folder's device-study/summary.json)."""
    import subprocess

    if not (REPO / ".git").exists():
        import pytest

        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "results"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [f for f in ignored if "/embeddings/" not in f] == []


def test_readme_population_figures_are_those_of_the_probe():
    """The weighting study's population probe: the README's step times and ratios are the rows of
    results/bench/2026-11-28-probes/population.jsonl."""
    rows = [json.loads(line) for line in (REPO / "results/bench/2026-11-28-probes/population.jsonl").open()]
    ms = {(r["members"], r["mode"], r["bf16"]): r["step_ms"] for r in rows}
    pop, seq, one = ms[17, "population", False], ms[17, "sequential", False], ms[1, "sequential", False]
    readme = " ".join(documentation().split())
    assert (
        f"17 members take {pop:.1f} ms a step in fp32 as a population against {seq:.1f} ms stepped one after "
        f"another ({seq / pop:.1f}×), and against {17 * one:.1f} ms for 17 steps of one member alone "
        f"({one:.1f} ms each: {17 * one / pop:.1f}×); {ms[17, 'population', True]:.1f} ms in bf16. One member alone "
        f"as a population takes {ms[1, 'population', False]:.1f} ms"
    ) in readme


def test_readme_population_step_table_is_the_one_generated_from_its_rows():
    from bsa.report.bench import population_step_table

    path = REPO / "results/bench/2026-11-28-population-step/population_step.jsonl"
    rows = [json.loads(line) for line in path.open()]
    assert {(r["members"], r["teachers"]) for r in rows} == {
        (k, t) for k in (1, 9, 17) for t in ("shared", "own")
    }
    assert population_step_table(rows) in documentation()


def test_population_step_table_by_hand():
    from bsa.report.bench import population_step_table

    rows = [
        {"members": 4, "teachers": "own", "step_ms": 40.0, "samples_per_s_all": 100.0},
        {"members": 1, "teachers": "own", "step_ms": 20.0, "samples_per_s_all": 10.0},
    ]
    rows.append(
        {"members": 4, "teachers": "own", "graphs": True, "step_ms": 30.0, "samples_per_s_all": 133.3}
    )
    assert population_step_table(rows).splitlines()[2:] == [
        "| 1 | one per member | eager | 20.0 | 10 | 1.00× |",
        "| 4 | one per member | eager | 40.0 | 100 | 2.00× |",
        "| 4 | one per member | graphed | 30.0 | 133 | – |",  # no graphed one-student row to compare with
    ]


def test_readme_vocoder_reconstruction_table_is_that_of_its_summary():
    """The magnitude vocoder against Griffin-Lim: the README's rows are results/vocoder/summary.json's."""
    results = json.loads((REPO / "results/vocoder/summary.json").read_text())["results"]
    readme = documentation()
    for name in (
        "real → VAE → griffin-lim",
        "real → VAE → runs/magvoc",
        "real → griffin-lim",
        "real → runs/magvoc",
    ):
        r = results[name]
        row = f"| {name} | {r['fad_real']:.2f} | {r['clap']:.4f} | {r['acc_mean']:.4f} | {r['silence_floor_dbfs']:.1f} |"
        assert row in readme, row
    # the bound: the true magnitude through the same Griffin-Lim, in a run that repeats its rows
    bound = json.loads((REPO / "results/vocoder/true-magnitude.json").read_text())["results"]
    r = bound["real → true magnitude → griffin-lim"]
    row = f"| real → true magnitude → griffin-lim | {r['fad_real']:.2f} | {r['clap']:.4f} | {r['acc_mean']:.4f} | {r['silence_floor_dbfs']:.1f} |"
    assert row in readme, row
    for name in ("real → VAE → griffin-lim", "real → griffin-lim"):
        assert bound[name] == results[name], name
    # the shipped vocoder's rows
    shipped = json.loads((REPO / "results/vocoder/spectral-convergence.json").read_text())["results"]
    shipped |= json.loads((REPO / "results/vocoder/spectral-convergence-8k.json").read_text())["results"]
    for name in (
        "real → VAE → runs/magvoc-sc",
        "real → runs/magvoc-sc",
        "real → VAE → runs/magvoc-sc8k",
        "real → runs/magvoc-sc8k",
    ):
        r = shipped[name]
        row = f"| {name} | {r['fad_real']:.2f} | {r['clap']:.4f} | {r['acc_mean']:.4f} | {r['silence_floor_dbfs']:.1f} |"
        assert row in readme, row


def test_readme_teacher_table_through_the_vocoder_is_that_of_its_record():
    from bsa.report.tables import format_table

    record = json.loads((REPO / "results/teacher-vocoder-2026-11-28/metrics.json").read_text())
    assert record["protocol"]["waveform"].startswith("MagnitudeVocoder ")
    assert format_table(record["results"]) in documentation()


def test_readme_regional_graph_counts_are_those_of_the_committed_run():
    rows = json.loads((REPO / "results/bench/2026-11-29-regional-graphs-cpu.json").read_text())["rows"]
    count = {(r["shapes"], r["calls"]): r["unique_graphs_after_step"][-1] for r in rows}
    readme = " ".join(documentation().split())
    both, student = count[("static", "both")], count[("static", "student")]
    assert count[("dynamic", "both")] == both
    assert (
        f"compiles **{both} graphs** of the repeated blocks — {student} for the student's step alone"
        in readme
    )
    assert (
        f"the other {both - student} for the teacher's calls" in readme
        and f"the same {both} with dynamic shapes" in readme
    )


def test_readme_ddp_loss_curve_table_is_the_committed_runs():
    s = json.loads((REPO / "results/ddp-loss-curve-cpu-2026-11-29/summary.json").read_text())
    readme = documentation()
    for r in s["windows"]:
        d = r["difference"]
        cell = prose_interval(d, "+.3f")
        row = f"| {r['steps'][0]}–{r['steps'][1]} | {r['1 process × 16']['mean']:.3f} | {r['2 DDP ranks × 8']['mean']:.3f} | {cell} |"
        assert row in readme and d["lo"] < 0 < d["hi"]  # the README says no difference is resolved


def test_readme_teacher_steps_table_is_the_one_of_its_evaluations():
    """The README's "made by the distillation, not by sampling with fewer steps": the teacher's own
    per-clip scores at 25 and 4 DDIM steps (bsa evaluate on this CPU) against seed 0's records
    through the vocoder, recomputed from the committed files; and the CPU teacher at 200 steps
    gives the GPU record's per-clip head correctness on the first 32 captions."""
    from bsa.data.embedded import caption_labels
    from bsa.report.fidelity import accuracy_by_label, format_accuracy_by_label
    from bsa.report.records import final_records

    folder = REPO / "results/fidelity/teacher-steps-cpu-2026-11-29"
    runs = [final_records(REPO / "results/fidelity/vocoder-2026-11-29/runs/s0/eval.jsonl")]
    others = {
        f"teacher @ {n}": json.loads((folder / f"teacher-{n}/per_clip.json").read_text())["per_clip"]
        for n in (25, 4)
    }
    assert {len(c["clap"]) for c in others.values()} == {400}
    table = accuracy_by_label(runs, caption_labels(0, "test", 400, ("loudness", "background")), others)
    readme = documentation()
    assert format_accuracy_by_label(table, ("25", "4", "teacher @ 25", "teacher @ 4")) in readme
    quiet = table["loudness"]["quiet"]["teacher @ 25"]["delta"]
    assert f"quiet +{quiet['mean']:.3f} [+{quiet['lo']:.3f}, +{quiet['hi']:.3f}]" in " ".join(readme.split())
    cpu = json.loads((folder / "teacher-200-first32/per_clip.json").read_text())["per_clip"]
    gpu = next(r for r in runs[0] if r["mode"] == "teacher")["per_clip"]
    assert all(cpu[k] == gpu[k][:32] for k in cpu if k.startswith("acc_"))


def test_readme_levels_table_is_the_one_of_its_evaluations():
    """The README's "not by making quiet clips quieter": the level table recomputed from the two
    committed per-clip evaluations, and the figures the text quotes."""
    from bsa.data.embedded import caption_labels
    from bsa.report.fidelity import score_by_label

    folder = REPO / "results/fidelity/levels-cpu-2026-11-29"
    student, teacher = (
        json.loads((folder / f"{m}-25/per_clip.json").read_text())["per_clip"] for m in ("student", "teacher")
    )
    labels = caption_labels(0, "test", 400, ("loudness", "background"))
    quiet = score_by_label(student, teacher, labels["loudness"], "level_db")["quiet"]["delta"]
    silence = score_by_label(student, teacher, labels["background"], "noise_floor_db")["silence"]["delta"]
    readme = " ".join(documentation().split())
    assert " ".join((folder / "summary.md").read_text().split()) in readme
    mean, interval = prose_interval(quiet, "+.1f").split(" ", 1)
    assert f"({mean} dB {interval})" in readme
    mean, interval = prose_interval(silence, "+.1f").split(" ", 1)
    assert f"{mean[1:]} dB deeper {interval}" in readme  # the sign is in the word


def test_readme_cpu_preset_figures_are_those_of_its_records():
    """The README's CPU-preset run of 2026-11-29: the wall time of its time.txt and the 25-step
    student's paired differences of its summary.json."""
    import re

    folder = REPO / "results/distill-embedded-cpu-2026-11-29"
    seconds = int(re.search(r"wall: (\d+) s", (folder / "time.txt").read_text()).group(1))
    row = json.loads((folder / "summary.json").read_text())["rows"][-1]
    assert row["steps"] == 25

    def paired(row, k):  # a summary row keeps a figure as k, k_lo, k_hi
        return prose_interval({"mean": row[k], "lo": row[f"{k}_lo"], "hi": row[f"{k}_hi"]}, "+.3f")

    clap, acc = (paired(row, k) for k in ("paired_clap_difference", "paired_acc_difference"))
    readme = " ".join(documentation().split())
    assert f"**{seconds // 60} min {seconds % 60} s** from after the clone" in readme and seconds <= 30 * 60
    assert f"stage 3 @ 25: Δ CLAP {clap}, Δ attribute accuracy {acc}" in readme
    row = json.loads((folder / "min_snr/summary.json").read_text())["rows"][-1]
    assert f"stage 3 @ 25 Δ CLAP {paired(row, 'paired_clap_difference')} against BSA's" in readme


def test_readme_heads_tables_are_those_of_their_summary():
    """The README's "the loudness head is a level detector, the background head hears the noise
    floor": the committed summary's tables, and its caption groups recomputed from the two committed
    per-clip evaluations (the real-clip gain sweep needs the generated data set, which a clone does
    not carry)."""
    sys.path.insert(0, str(REPO / "experiments" / "cpu"))
    try:
        from what_the_heads_hear import CASES, clips_by_outcome, format_summary
    finally:
        sys.path.pop(0)
    from bsa.data.embedded import caption_labels

    folder = REPO / "results/fidelity/heads-cpu-2026-11-29"
    summary = json.loads((folder / "summary.json").read_text())
    levels = REPO / "results/fidelity/levels-cpu-2026-11-29"
    student, teacher = (
        json.loads((levels / f"{m}-25/per_clip.json").read_text())["per_clip"] for m in ("student", "teacher")
    )
    labels = caption_labels(0, "test", 400, ("loudness", "background"))
    groups = {
        f"{head}/{label}/{score}": clips_by_outcome(student, teacher, labels[head], head, label, score)
        for head, label, score in CASES
    }
    assert groups == summary["by_outcome"]
    for (head, label, _), by_group in zip(CASES, groups.values(), strict=True):
        assert sum(g["clips"] for g in by_group.values()) == labels[head].count(label)  # every clip once
    readme = documentation()
    assert format_summary(summary) in readme
    flat = " ".join(readme.split())
    quiet = groups["loudness/quiet/level_db"]
    d = quiet["reference wrong, model right"]["delta"]
    assert prose(f"the student's {abs(d['mean']):.1f} dB lower [{d['lo']:.1f}, {d['hi']:.1f}]") in flat
    teacher_loud = sum(quiet[g]["clips"] for g in ("reference wrong, model right", "both wrong"))
    student_loud = sum(quiet[g]["clips"] for g in ("reference right, model wrong", "both wrong"))
    assert f"({teacher_loud} of 198 heard loud)" in flat and f"out of the student ({student_loud})" in flat
    silence = groups["background/silence/noise_floor_db"]["reference wrong, model right"]
    noise = groups["background/noise/noise_floor_db"]["reference wrong, model right"]
    assert (
        prose(
            f"on the {silence['clips']} the student fixes, the teacher leaves a floor of {silence['reference']:.0f} dBFS"
            f" (a noise background's) where the student's is silent ({silence['model']:.0f})"
        )
        in flat
    )
    assert (
        prose(
            f"on the {noise['clips']} it fixes, the teacher's background is silent ({noise['reference']:.0f})"
            f" and the student's noise ({noise['model']:.0f})"
        )
        in flat
    )
    by_gain = summary["heard_loud_by_gain"]
    assert prose(f"(median {by_gain['+0']['quiet']['median_level_db']:.1f} dBFS)") in flat
    loud = by_gain["-6"]["loud"]
    assert (
        prose(
            f"than they are ({loud['median_level_db']:.1f} dBFS) are still heard loud {loud['heard_loud']:.0%}"
        ).replace("%", " %")
        in flat
    )


def test_readme_population_speed_figures_are_those_of_its_runs():
    """The population step before and after cudnn.benchmark, the batch-norm GroupNorm and the
    GroupNorm operator: the calls table and the step times are the rows of
    results/bench/2026-11-29-population-speed."""
    from bsa.report.bench import population_calls_table

    folder = REPO / "results/bench/2026-11-29-population-speed"

    def rows(run, name):
        return [json.loads(line) for line in (folder / run / name).open()]

    calls = population_calls_table(
        {
            "reductions (before)": rows("groupnorm-reductions", "population_kernels.jsonl"),
            "batch norm": rows("groupnorm-batchnorm", "population_kernels.jsonl"),
            "operator": rows("groupnorm-operator", "population_kernels.jsonl"),
        }
    )
    readme = documentation()
    assert calls in readme
    earlier = {
        r["teachers"]: r["step_ms"]
        for r in rows("../2026-11-28-population-step", "population_step.jsonl")
        if r["members"] == 17 and r.get("graphs")
    }
    steps = [
        {r["teachers"]: r["step_ms"] for r in rows(run, "population_step.jsonl")}
        for run in ("groupnorm-reductions", "groupnorm-batchnorm", "groupnorm-operator")
    ]
    ms = [f"{s['shared']:.1f} / {s['own']:.1f}" for s in (earlier, *steps)]
    ratio = f"{earlier['shared'] / steps[2]['shared']:.2f}× / {earlier['own'] / steps[2]['own']:.2f}×"
    flat = " ".join(readme.split())
    assert (
        f"goes from {ms[0]} ms (shared / own teachers, 2026-11-28) to {ms[1]} with the benchmark, "
        f"{ms[2]} with the batch norm and {ms[3]} with the operator: {ratio}."
    ) in flat
    assert f"**The population step, {ratio.split('×')[0]}× faster**" in flat


def test_population_calls_table_by_hand():
    from bsa.report.bench import population_calls_table

    table = population_calls_table(
        {
            "a": [
                {"variant": "vmap+profile", "call": "teacher", "ms": 10.0},
                {"variant": "vmap+profile", "kernel": "k", "ms": 3.0},  # a profile row: not a call
                {"variant": "single", "call": "student", "ms": 7.26},
            ]
        }
    )
    assert table.splitlines()[2:] == ["| a | vmap | 10.0 | – |", "| a | single | – | 7.3 |"]


def test_the_pooled_vocoder_map_takes_each_weighting_as_its_own_comparison_measured_it():
    """Seed 1's map pools its two comparisons, each with its own bsa: every other weighting's scores
    and paired differences are exactly those of its own half."""
    pooled = json.loads(
        (REPO / "results/weighting-study/map-seed1-vocoder-2026-11-29/summary.json").read_text()
    )["steps"]["25"]
    seen = set()
    for half in ("map-seed1-2026-11-29", "map-seed1-2026-11-29-part2"):
        rows = json.loads((REPO / "results/weighting-study" / half / "summary.json").read_text())["steps"][
            "25"
        ]
        for w, row in rows.items():
            if w != "bsa":
                assert {k: pooled[w][k] for k in row} == row, (half, w)
                seen.add(w)
    assert seen == set(pooled) - {"bsa"} and len(seen) == 16
    assert pooled["bsa"]["runs"] == 2


def test_the_six_seed_map_keeps_each_seeds_rows_where_only_that_seed_ran():
    """results/weighting-study/summary.json pools seed 1's map, seed 2's 9 deciding points, seed 3's
    map, seed 4's (all 17 at 25 steps, its population of 8 at 4) and seeds 5's and 6's (all 17 at 25
    steps, on H100s): every point at both step counts; a point run on seed 3 alone at 4 steps keeps
    seed 3's row exactly; each row covers the seeds that ran it; the paired FAD differences (seed 3's
    lost with its machine, seeds 4's–6's computed at home from their embeddings) name the seeds they
    cover; bsa counts its seven runs at 25 steps; the summary names both machines with their seeds."""
    folder = REPO / "results/weighting-study"
    summary = json.loads((folder / "summary.json").read_text())
    pooled = summary["steps"]
    seed2, seed3, seed4 = (
        json.loads((folder / f"map-seed{n}-2026-11-29/summary.json").read_text())["steps"] for n in (2, 3, 4)
    )
    seed5, seed6 = (
        json.loads((folder / name / "summary.json").read_text())["steps"]
        for name in ("map-seed5-h100-2026-12-07", "map-seed6-h100-2026-12-08")
    )
    deciding, at4 = set(seed2["4"]) - {"bsa"}, set(seed4["4"]) - {"bsa"}
    assert (
        len(deciding) == 8
        and len(at4) == 7
        and len(seed4["25"]) == len(seed5["25"]) == len(seed6["25"]) == 17
    )
    assert "4" not in seed5 and "4" not in seed6
    assert set(pooled["25"]) == set(pooled["4"]) == set(seed3["4"]) and len(pooled["4"]) == 17
    for w in set(pooled["4"]) - {"bsa"}:
        seeds2 = [2] if w in deciding else []
        assert pooled["25"][w]["diff_seeds"] == [1, *seeds2, 3, 4, 5, 6], w
        assert pooled["25"][w].get("fad_diff_seeds") == [1, *seeds2, 4, 5, 6], w
        seeds4 = [4] if w in at4 else []
        assert pooled["4"][w]["diff_seeds"] == [*seeds2, 3, *seeds4], w
        if seeds2 or seeds4:
            assert pooled["4"][w]["fad_diff_seeds"] == [*seeds2, *seeds4], w
        else:  # seed 3 alone: its row as it is, no FAD difference
            assert {k: pooled["4"][w][k] for k in seed3["4"][w]} == seed3["4"][w], w
            assert "fad_vs_teacher" not in pooled["4"][w]["diff_to_bsa"]
    assert pooled["25"]["bsa"]["runs"] == 7 and pooled["25"]["bsa"]["replicate_difference"]["seeds"] == [1]
    assert summary["device"] == "NVIDIA H200 (seeds 1, 2, 3, 4); NVIDIA H100 80GB HBM3 (seeds 5, 6)"


@pytest.mark.parametrize(
    "folder, wall_clock",
    [("map-seed6-h100-2026-12-08", "19.6 min"), ("map-seed5-h100-2026-12-07", "23.0 min")],
)
def test_readme_block_time_tables_are_the_ones_generated_from_their_logs(folder, wall_clock):
    """The one-H100 blocks' parts (README "The 25-step block on one H100") are read from the
    comparisons' logs brought home, not copied by hand."""
    from bsa.report.timeline import block_parts, format_block_parts

    rows = block_parts(REPO / "results/weighting-study" / folder)
    assert format_block_parts(rows) in documentation()
    assert dict(rows)["the comparison's wall clock (`results.md`)"] == wall_clock


def test_readme_results_at_a_glance_is_generated_from_the_records():
    from bsa.report.overview import RECORDS, overview_table

    records = {key: json.loads((REPO / path).read_text()) for key, path in RECORDS.items()}
    assert overview_table(records) in (REPO / "README.md").read_text()


def test_results_at_a_glance_reads_each_figure_from_its_record():
    """A changed figure in a record changes its cell: the table is not a copy of the README."""
    from bsa.report.overview import RECORDS, overview_table

    records = {key: json.loads((REPO / path).read_text()) for key, path in RECORDS.items()}
    records["speed"]["ddp2_185m_scaling"] = 1.93
    records["fidelity"]["steps"]["4"]["fad_ratio"] = {"mean": 0.5, "lo": 0.25, "hi": 0.75}
    table = overview_table(records)
    assert "2 GPUs 1.93× one" in table
    assert "FAD vs teacher 0.50 [0.25, 0.75]× its floor" in table
    assert overview_table(records) not in (REPO / "README.md").read_text()
