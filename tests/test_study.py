"""The weighting study's summary (bsa.report.study, bsa study) on hand-built records."""

import json
import math
import shutil

import pytest

from bsa.report.study import format_study, study_summary


def record(weighting, seed, steps, clap, acc, fad=5.0, se=0.5, mode="progressive"):
    return {
        "run": f"{weighting}-seed{seed}",
        "weighting": weighting,
        "seed": seed,
        "steps": steps,
        "mode": mode,
        "stage": 3,
        "label": f"stage 3 student @ {steps}",
        "final": True,
        "per_clip": {"clap": clap, "acc_mean": acc},
        "metrics": {"fad_teacher": fad, "fad_teacher_se": se},
        "protocol": {"num_clips": len(clap), "device": "test"},
    }


def records():
    out = []
    for seed in (0, 1):
        out.append(record("bsa", seed, 25, [0.5, 0.6, 0.7, 0.8], [1.0, 0.0, 1.0, 1.0], fad=4.0 + seed))
        # min_snr: every clip 0.1 better in CLAP, the same accuracy
        out.append(record("min_snr", seed, 25, [0.6, 0.7, 0.8, 0.9], [1.0, 0.0, 1.0, 1.0], fad=6.0))
        out.append(record("snr_plus_one", seed, 25, [0.5, 0.6, 0.7, 0.8], [1.0, 1.0, 1.0, 1.0]))
    out.append(record("bsa", 0, 100, [0.1] * 4, [0.0] * 4))  # not a study step count
    out.append(record("guided", 0, 200, [0.1] * 4, [0.0] * 4, mode="guided"))
    return out


def test_scores_intervals_and_paired_differences_by_hand():
    s = study_summary(records())
    assert list(s["steps"]) == ["25"] and s["not_reached"] == [4]
    block = s["steps"]["25"]
    assert list(block) == ["bsa", "min_snr", "snr_plus_one"]  # the reference first
    assert block["bsa"]["clap"]["mean"] == pytest.approx(0.65)
    assert block["bsa"]["attribute_acc"]["mean"] == pytest.approx(0.75)
    # a constant per-clip difference has a degenerate interval at that value
    assert block["min_snr"]["diff_to_bsa"]["clap"] == pytest.approx({"mean": 0.1, "lo": 0.1, "hi": 0.1})
    assert block["min_snr"]["diff_to_bsa"]["attribute_acc"]["mean"] == 0.0
    assert block["snr_plus_one"]["diff_to_bsa"]["attribute_acc"]["mean"] == pytest.approx(0.25)
    assert "diff_to_bsa" not in block["bsa"]
    # FAD: the mean over seeds (4, 5) with the within-seed SE and the between-seed spread
    fad = block["bsa"]["fad_vs_teacher"]
    assert fad["mean"] == pytest.approx(4.5)
    half = 1.959964 * (0.5**2 + 0.5 / 2) ** 0.5  # within 0.5², between var([4, 5]) / 2 seeds = 0.25
    assert fad["hi"] - fad["mean"] == pytest.approx(half, rel=1e-4)
    assert block["min_snr"]["family"] == {"floor": 0.0, "gamma": 5.0}
    assert block["bsa"]["family"] == {"floor": 1.0, "gamma": 5.0} and block["snr_plus_one"]["family"] is None
    assert s["seeds"] == [0, 1] and s["captions"] == 4
    table = format_study(s)
    assert "| 25 | min_snr | (0, 5) | 0,1 |" in table and "+0.1000 [+0.1000, +0.1000] ✓" in table


def test_bsa_study_writes_the_summary_and_refuses_a_folder_without_records(tmp_path, capsys):
    from bsa.cli.main import main

    comparison = tmp_path / "cmp"
    for r in records():
        run = comparison / r["run"]
        run.mkdir(parents=True, exist_ok=True)
        with open(run / "eval.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
    out = tmp_path / "study"
    assert main(["study", str(comparison), "--out", str(out), "--command", "make it so"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "make it so" and summary["steps"]["25"]["min_snr"]["diff_to_bsa"]
    assert (out / "summary.md").read_text() == format_study(summary)
    assert "not reached by these comparisons: [4] steps" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["study", str(empty)]) == 2
    assert "empty: no */eval.jsonl records" in capsys.readouterr().err
    # the paired FAD differences of a summary written where the embeddings were (none here)
    assert "fad_vs_teacher" not in summary["steps"]["25"]["min_snr"]["diff_to_bsa"]
    device = json.loads((out / "summary.json").read_text())
    paired = {"mean": -1.5, "lo": -2.0, "hi": -1.0}
    device["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"] = paired
    (tmp_path / "device.json").write_text(json.dumps(device))
    again = tmp_path / "again"
    assert (
        main(
            [
                "study",
                str(comparison),
                "--out",
                str(again),
                "--fad-differences",
                str(tmp_path / "device.json"),
            ]
        )
        == 0
    )
    summary = json.loads((again / "summary.json").read_text())
    assert summary["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"] == paired
    assert "fad_vs_teacher" not in summary["steps"]["25"]["snr_plus_one"]["diff_to_bsa"]
    assert summary["fad_differences"] == [str(tmp_path / "device.json")]
    copy = tmp_path / "copy"
    shutil.copytree(comparison, copy)
    twice = main(["study", str(comparison), str(copy), "--out", str(tmp_path / "twice")])
    assert twice == 2 and "is in " in capsys.readouterr().err  # the same students in two folders
    other = main(["study", str(comparison), "--out", str(again), "--reference", "min_snr",
                  "--fad-differences", str(tmp_path / "device.json")])  # fmt: skip
    assert other == 2 and "its paired differences are to bsa, not to min_snr" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert (
        main(["study", str(comparison), "--out", str(again), "--fad-differences", str(tmp_path / "bad.json")])
        == 2
    )
    assert f"{tmp_path / 'bad.json'}: not a study summary" in capsys.readouterr().err


def test_low_noise_shares_sum_the_steps_above_snr_one():
    from bsa.report.study import low_noise_shares

    profile = {
        "profile": [
            {"snr": 0.01, "share": 0.5, "grad_share": 0.25},
            {"snr": 0.9, "share": 0.3, "grad_share": 0.25},
            {"snr": 4.0, "share": 0.2, "grad_share": 0.5},
        ]
    }
    assert low_noise_shares(profile) == {"steps": 1, "of": 3, "loss": 0.2, "gradient": 0.5}
    prof = dict(profile, weighting="min_snr", steps=25, mode="progressive")
    s = study_summary(records(), profiles=[prof])
    assert s["steps"]["25"]["min_snr"]["low_noise_share"] == [low_noise_shares(profile)]
    assert "low_noise_share" not in s["steps"]["25"]["bsa"]
    assert "| 0.200 / 0.500 |" in format_study(s)


def test_paired_fad_differences_come_from_the_kept_embeddings(tmp_path):
    """A comparison folder whose final records name their embedding files: the FAD difference to
    bsa is FD(w, teacher) − FD(bsa, teacher) per seed, pooled over seeds; a weighting without
    embeddings gets none."""
    import torch
    from safetensors.torch import save_file

    from bsa.metrics.frechet import embedding_frechet
    from bsa.report.study import paired_fad_differences

    g = torch.Generator().manual_seed(1)
    teacher = torch.randn(300, 4, generator=g)
    embeddings = {("teacher", 0): teacher}
    recs = [dict(record("bsa", 0, 25, [0.5], [1.0]), mode="teacher", stage=-1, run="bsa-seed0")]
    for w, scale in (("bsa", 0.5), ("min_snr", 0.2), ("constant", 0.2)):
        embeddings[w] = teacher + scale * torch.randn(300, 4, generator=g)
        recs.append(record(w, 0, 25, [0.5], [1.0]))
    for r in recs:
        folder = tmp_path / r["run"]
        (folder / "embeddings").mkdir(parents=True, exist_ok=True)
        if r["weighting"] == "constant":
            continue  # no embedding kept
        name = "teacher" if r["mode"] == "teacher" else r["weighting"]
        save_file(
            {"embedding": embeddings[("teacher", 0) if name == "teacher" else name]},
            str(folder / "embeddings" / f"{name}.safetensors"),
        )
        r["embedding_file"] = f"embeddings/{name}.safetensors"
    fad = paired_fad_differences({tmp_path: recs})
    assert set(fad) == {("min_snr", 25)}
    expected = embedding_frechet(embeddings["min_snr"], teacher) - embedding_frechet(
        embeddings["bsa"], teacher
    )
    assert fad["min_snr", 25]["mean"] == pytest.approx(expected)
    assert fad["min_snr", 25]["lo"] < expected < fad["min_snr", 25]["hi"] < 0  # resolved: min_snr closer
    s = study_summary(recs, fad_differences=fad)
    assert s["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"] == fad["min_snr", 25]
    assert "fad_vs_teacher" not in s["steps"]["25"]["constant"]["diff_to_bsa"]


def test_metric_intervals_per_weighting_and_steps():
    from bsa.report.study import metric_intervals

    ci = metric_intervals(records())
    assert set(ci) == {("bsa", 25), ("min_snr", 25), ("snr_plus_one", 25), ("bsa", 100)}
    clap = ci["bsa", 25]["clap"]
    assert clap["mean"] == pytest.approx(0.65) and clap["lo"] < 0.65 < clap["hi"]
    assert ci["bsa", 100]["clap"] == pytest.approx({"mean": 0.1, "lo": 0.1, "hi": 0.1})  # all clips equal
    fad = ci["bsa", 25]["fad_teacher"]  # seeds 4 and 5, SE 0.5 each: as in the study's summary
    assert fad == study_summary(records())["steps"]["25"]["bsa"]["fad_vs_teacher"]
    assert "fad_teacher_ratio" not in ci["bsa", 25]  # not in these records


def test_paired_fad_differences_read_each_record_from_its_own_comparison(tmp_path):
    """Two comparisons (say the 25-step and the 4-step block) hold runs of the same names and
    embedding files of the same names: each record's embedding comes from its own folder."""
    import torch
    from safetensors.torch import save_file

    from bsa.metrics.frechet import embedding_frechet
    from bsa.report.study import paired_fad_differences

    g = torch.Generator().manual_seed(2)
    teacher = torch.randn(200, 4, generator=g)
    comparisons, embeddings = {}, {}
    for folder, steps in ((tmp_path / "a", 25), (tmp_path / "b", 4)):
        recs = [dict(record("bsa", 0, steps, [0.5], [1.0]), mode="teacher", stage=-1)]
        recs += [record(w, 0, steps, [0.5], [1.0]) for w in ("bsa", "min_snr")]
        for r in recs:
            name = "teacher" if r["mode"] == "teacher" else r["weighting"]
            e = (
                teacher
                if name == "teacher"
                else teacher + float(torch.rand((), generator=g)) * torch.randn(200, 4, generator=g)
            )
            embeddings[folder, name] = e
            (folder / r["run"] / "embeddings").mkdir(parents=True, exist_ok=True)
            save_file({"embedding": e}, str(folder / r["run"] / "embeddings" / f"{name}.safetensors"))
            r["embedding_file"] = f"embeddings/{name}.safetensors"
        comparisons[folder] = recs
    fad = paired_fad_differences(comparisons)
    for folder, steps in ((tmp_path / "a", 25), (tmp_path / "b", 4)):
        expected = embedding_frechet(embeddings[folder, "min_snr"], teacher) - embedding_frechet(
            embeddings[folder, "bsa"], teacher
        )
        assert fad["min_snr", steps]["mean"] == pytest.approx(expected)


def test_a_profile_with_only_zero_gradient_norms_reports_no_gradient_share(tmp_path):
    """Seed 1's 25-step members (2026-11-29) recorded grad_norm 0.0 at every step (no trainable
    parameter): the study read a gradient share of 0.000 below SNR 1. Such a profile has none."""
    from bsa.report.records import comparison_profiles
    from bsa.report.study import low_noise_shares

    def profile(norms):
        rows = [
            {"snr": snr, "share": 0.5, "grad_norm": g, "grad_share": g / (sum(norms) or 1.0)}
            for snr, g in zip((0.1, 10.0), norms, strict=True)
        ]
        return {"run": "bsa-seed1", "stage": 3, "profile": rows}

    for name, norms in (("void", (0.0, 0.0)), ("real", (1.0, 3.0))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "profiles.jsonl").write_text(json.dumps({**profile(norms), "run": name}) + "\n")
    by_run = {p["run"]: p for p in comparison_profiles(tmp_path)}
    assert low_noise_shares(by_run["void"]) == {"steps": 1, "of": 2, "loss": 0.5}
    assert low_noise_shares(by_run["real"])["gradient"] == pytest.approx(0.75)


def write_comparison(folder, recs):
    for r in recs:
        run = folder / r["run"]
        run.mkdir(parents=True, exist_ok=True)
        with open(run / "eval.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")


def test_a_reference_run_again_beside_other_students_makes_each_comparison_a_block(tmp_path):
    """Seed 1's map in two comparisons (2026-11-29), each a population with its own bsa: each
    weighting's difference is to the bsa trained beside it, and the two bsa runs' difference is the
    run-to-run noise, reported beneath the reference."""
    from bsa.report.study import study_of_comparisons

    clap = [0.5, 0.6, 0.7, 0.8]
    first, second = tmp_path / "first", tmp_path / "second"
    write_comparison(first, [record("bsa", 1, 25, clap, [1.0] * 4, fad=4.0),
                             record("min_snr", 1, 25, [c + 0.1 for c in clap], [1.0] * 4)])  # fmt: skip
    run2 = [c + 0.02 for c in clap]  # bsa trained again: every clip 0.02 higher
    write_comparison(second, [record("bsa", 1, 25, run2, [1.0, 1.0, 0.0, 1.0], fad=5.0),
                              record("snr_plus_one", 1, 25, [c + 0.05 for c in run2], [1.0] * 4)])  # fmt: skip
    s = study_of_comparisons([first, second])
    block = s["steps"]["25"]
    # to its own comparison's bsa: +0.05, not +0.07 (the first bsa)
    assert block["snr_plus_one"]["diff_to_bsa"]["clap"] == pytest.approx(
        {"mean": 0.05, "lo": 0.05, "hi": 0.05}
    )
    assert block["min_snr"]["diff_to_bsa"]["clap"] == pytest.approx({"mean": 0.1, "lo": 0.1, "hi": 0.1})
    bsa = block["bsa"]
    assert bsa["runs"] == 2 and bsa["seeds"] == [1]
    assert bsa["clap"]["mean"] == pytest.approx(0.66)  # both runs pooled
    rep = bsa["replicate_difference"]
    assert rep["clap"] == pytest.approx({"mean": 0.02, "lo": 0.02, "hi": 0.02}, abs=1e-6)
    assert rep["attribute_acc"]["mean"] == pytest.approx(-0.25)
    half = 1.959964 * (0.5**2 + 0.5**2) ** 0.5  # unpaired: 5.0 − 4.0 with both standard errors
    assert rep["fad_vs_teacher"] == pytest.approx({"mean": 1.0, "lo": 1.0 - half, "hi": 1.0 + half}, rel=1e-4)
    table = format_study(s)
    assert "| 25 | bsa | (1, 5) | 1 (2 runs) |" in table
    assert "| 25 | bsa: run 2 − run 1 | – | 1 | – | – | – | +0.0200 [+0.0200, +0.0200] ✓ |" in table
    assert "(unpaired)" in table
    # a student without a bsa of its own comparison cannot be paired: refused by name
    third = tmp_path / "third"
    write_comparison(third, [record("constant", 1, 25, clap, [1.0] * 4)])
    with pytest.raises(ValueError, match="third: constant at 25 steps, seed 1, has no bsa of its own"):
        study_of_comparisons([first, second, third])
    # one comparison alone: no replicate rows
    assert "runs" not in study_of_comparisons([first])["steps"]["25"]["bsa"]
    # another seed's comparison beside them (2026-11-29, seed 2): its bsa ran once, so the replicate
    # row covers seed 1 alone; the reference row counts all three runs
    other_seed = tmp_path / "other-seed"
    write_comparison(other_seed, [record("bsa", 2, 25, clap, [1.0] * 4),
                                  record("min_snr", 2, 25, clap, [1.0] * 4)])  # fmt: skip
    s = study_of_comparisons([first, second, other_seed])
    bsa = s["steps"]["25"]["bsa"]
    assert bsa["runs"] == 3 and bsa["seeds"] == [1, 2]
    assert bsa["replicate_difference"]["seeds"] == [1]
    assert bsa["replicate_difference"]["clap"] == pytest.approx(rep["clap"])
    table = format_study(s)
    assert "| 25 | bsa | (1, 5) | 1,2 (3 runs) |" in table
    assert "| 25 | bsa: run 2 − run 1 | – | 1 | – |" in table


def test_paired_fad_differences_within_blocks_take_their_own_teacher_and_reference(tmp_path):
    import torch
    from safetensors.torch import save_file

    from bsa.metrics.frechet import embedding_frechet
    from bsa.report.study import paired_fad_differences

    g = torch.Generator().manual_seed(3)
    comparisons, embeddings = {}, {}
    for folder, w in ((tmp_path / "a", "min_snr"), (tmp_path / "b", "constant")):
        teacher = torch.randn(200, 4, generator=g)  # each block scored its own teacher reference
        recs = [dict(record("bsa", 0, 25, [0.5], [1.0]), mode="teacher", stage=-1)]
        recs += [record(x, 0, 25, [0.5], [1.0]) for x in ("bsa", w)]
        for r in recs:
            name = "teacher" if r["mode"] == "teacher" else r["weighting"]
            e = teacher if name == "teacher" else teacher + 0.3 * torch.randn(200, 4, generator=g)
            embeddings[folder, name] = e
            (folder / r["run"] / "embeddings").mkdir(parents=True, exist_ok=True)
            save_file({"embedding": e}, str(folder / r["run"] / "embeddings" / f"{name}.safetensors"))
            r["embedding_file"] = f"embeddings/{name}.safetensors"
        comparisons[folder] = recs
    fad = paired_fad_differences(comparisons, blocks=True)
    for folder, w in ((tmp_path / "a", "min_snr"), (tmp_path / "b", "constant")):
        t = embeddings[folder, "teacher"]
        expected = embedding_frechet(embeddings[folder, w], t) - embedding_frechet(
            embeddings[folder, "bsa"], t
        )
        assert fad[w, 25]["mean"] == pytest.approx(expected)


def test_study_maps_place_each_point_and_its_paired_difference_on_the_grid(tmp_path):
    """map.html of `bsa study`: per step count, the scores and the paired differences to bsa on the
    (floor, γ) grid — bsa at (1, 5), min_snr at (0, 5); SNR+1 is off the map."""
    from bsa.cli.main import main
    from bsa.report.dashboard import study_maps

    s = study_summary(records())
    page = study_maps(s)
    # 3 scores, Δ CLAP and Δ accuracy at 25 steps (Δ FAD needs the runs' embeddings: none here)
    assert page.count("<table class='heat'>") == 5 and "Δ FAD" not in page
    assert "<caption>Δ CLAP vs bsa @ 25 steps (paired)</caption>" in page
    assert "<th>floor = 0</th>" in page and "<th>floor = 1</th>" in page and "<th>γ = 5</th>" in page
    clap = page.split("<caption>CLAP @ 25 steps</caption>")[1].split("</table>")[0]
    rows = clap.split("<tr>")[2:]  # floor 0 (min_snr) above floor 1 (bsa)
    assert "0.7500 [" in rows[0] and "0.6500 [" in rows[1]
    delta = page.split("<caption>Δ CLAP vs bsa @ 25 steps (paired)</caption>")[1].split("</table>")[0]
    assert "+0.1000 [+0.1000, +0.1000] ✓" in delta and "reference" in delta
    assert "snr_plus_one" not in page and "0.6000" not in delta
    write_comparison(tmp_path / "cmp", records())
    assert main(["study", str(tmp_path / "cmp"), "--out", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (tmp_path / "out" / "map.html").read_text() == study_maps(written)
    one = study_summary([r for r in records() if r["weighting"] != "min_snr"])
    assert "fewer than two points of the map" in study_maps(one)


def test_paired_fad_differences_of_two_seeds_summaries_pool_over_the_seeds(tmp_path):
    """Each seed's device summary brings its own paired FAD differences: a study over both seeds
    pools them (it kept the last one, labelled with both seeds), and refuses a difference that
    covers other seeds than the ones it pairs, or the same seed twice."""
    from bsa.report.study import study_of_comparisons

    write_comparison(tmp_path / "cmp", [r for r in records() if r["steps"] == 25])  # a run's one stage
    paths = {}
    for seed, paired in (
        (0, {"mean": -1.0, "lo": -2.0, "hi": 0.0}),
        (1, {"mean": -3.0, "lo": -4.0, "hi": -2.0}),
    ):
        device = study_summary([r for r in records() if r["seed"] == seed])
        device["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"] = paired
        paths[seed] = tmp_path / f"device-seed{seed}.json"
        paths[seed].write_text(json.dumps(device))
    s = study_of_comparisons([tmp_path / "cmp"], fad_from=[paths[1], paths[0]])  # in any order
    pooled = s["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"]
    half = 1.959964 * ((1 / 1.959964) ** 2 + 2.0 / 2) ** 0.5  # within: se²; between: var(−1, −3) / 2 seeds
    assert pooled == pytest.approx({"mean": -2.0, "lo": -2.0 - half, "hi": -2.0 + half}, rel=1e-5)
    with pytest.raises(
        ValueError, match=r"covers seeds \[0\], the study pairs seeds \[0, 1\].*--fad-partial"
    ):
        study_of_comparisons([tmp_path / "cmp"], fad_from=[paths[0]])
    with pytest.raises(ValueError, match="give each seed's once"):
        study_of_comparisons([tmp_path / "cmp"], fad_from=[paths[0], paths[0]])


def test_map_agreement_is_the_correlation_of_two_maps_differences_with_fishers_interval():
    from bsa.report.study import map_agreement

    def summary(diffs, paired=True):
        block = {"bsa": {"fad_vs_teacher": {"mean": 10.0}}}
        for i, d in enumerate(diffs):
            row = {"fad_vs_teacher": {"mean": 10.0 + d}}  # unpaired: the difference of the means
            if paired:
                row["diff_to_bsa"] = {"fad_vs_teacher": {"mean": d, "lo": d - 1, "hi": d + 1}}
            block[f"w{i}"] = row
        return {"reference": "bsa", "steps": {"25": block}}

    # x − 3 = (−2, −1, 0, 1, 2), y − 3 = (−1, −2, 1, 0, 2): Σxy = 8, Σx² = Σy² = 10 → r = 0.8
    got = map_agreement(summary([1, 2, 3, 4, 5]), summary([2, 1, 4, 3, 5], paired=False), "fad_vs_teacher")
    z, half = 1.0986123, 1.959964 / 2**0.5  # atanh 0.8; 1/√(5 − 3)
    assert got == pytest.approx({"points": 5, "r": 0.8, "lo": math.tanh(z - half), "hi": math.tanh(z + half)})
    assert got["lo"] == pytest.approx(-0.2797, abs=1e-4) and got["hi"] == pytest.approx(0.9862, abs=1e-4)
    assert map_agreement(summary([1, 2, 3]), summary([1, 2, 3]), "fad_vs_teacher") is None  # too few points
    assert map_agreement(summary([1, 2, 3, 4]), summary([1, 1, 1, 1]), "fad_vs_teacher") is None  # no spread


def test_bsa_study_agreement_with_another_seeds_map(tmp_path, capsys):
    """--agreement: the correlation of this map's differences to bsa with another summary's, in the
    summary and beneath the table."""
    from bsa.cli.main import main

    clap = [0.5, 0.6, 0.7, 0.8]
    recs = [record("bsa", 0, 25, clap, [1.0] * 4)]
    for i, d in enumerate([0.01, 0.02, 0.03, 0.04, 0.05]):  # five weightings, CLAP higher by d
        recs.append(record(f"bsa(floor={i},gamma=5)", 0, 25, [c + d for c in clap], [1.0] * 4))
    write_comparison(tmp_path / "cmp", recs)
    other = {"reference": "bsa", "steps": {"25": {"bsa": {}}}}
    for i, d in enumerate([0.02, 0.01, 0.04, 0.03, 0.05]):  # r = 0.8 with the above
        other["steps"]["25"][f"bsa(floor={i},gamma=5)"] = {"diff_to_bsa": {"clap": {"mean": d}}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    out = tmp_path / "study"
    assert (
        main(["study", str(tmp_path / "cmp"), "--out", str(out), "--agreement", str(tmp_path / "other.json")])
        == 0
    )
    (agreement,) = json.loads((out / "summary.json").read_text())["agreement"]
    assert agreement["with"] == str(tmp_path / "other.json") and agreement["steps"] == 25
    assert agreement["clap"]["r"] == pytest.approx(0.8, abs=1e-6) and agreement["clap"]["points"] == 5
    assert set(agreement) == {"with", "steps", "clap"}  # the other map has no accuracy or FAD
    assert f"Agreement with {tmp_path / 'other.json'} at 25 steps" in (out / "summary.md").read_text()
    assert "CLAP 0.80 [-0.28, 0.99]" in (out / "summary.md").read_text()
    capsys.readouterr()
    assert (
        main(["study", str(tmp_path / "cmp"), "--out", str(out), "--agreement", str(tmp_path / "none.json")])
        == 2
    )
    assert "none.json: not a study summary to compare with" in capsys.readouterr().err


def test_verdicts_sort_resolved_differences_by_which_side_is_better():
    """Lower FAD vs teacher is better, higher CLAP is: a weighting whose FAD difference to bsa is
    resolved below zero is better than bsa, one whose CLAP difference is resolved below zero is
    worse; a difference over fewer seeds than the study's names them."""
    from bsa.report.study import format_verdicts, verdicts

    def d(mean, lo, hi):
        return {"mean": mean, "lo": lo, "hi": hi}

    summary = {
        "reference": "bsa",
        "seeds": [1, 2],
        "steps": {
            "25": {
                "bsa": {"family": {"floor": 1.0, "gamma": 5.0}},
                "bsa(floor=0,gamma=5)": {
                    "family": {"floor": 0.0, "gamma": 5.0},
                    "diff_to_bsa": {"clap": d(-0.01, -0.02, -0.001), "fad_vs_teacher": d(-1.0, -2.0, -0.5)},
                    "diff_seeds": [1],
                },
                "snr_plus_one": {
                    "family": None,
                    "diff_to_bsa": {"clap": d(0.01, -0.001, 0.02)},
                    "diff_seeds": [1, 2],
                },
            }
        },
    }
    found = {v["score"]: v for v in verdicts(summary)}
    assert set(found) == {"CLAP", "FAD vs teacher"}  # no accuracy difference: no row
    clap, fad = found["CLAP"], found["FAD vs teacher"]
    assert [w for w, *_ in clap["behind"]] == ["bsa(floor=0,gamma=5)"] and clap["ahead"] == []
    assert (clap["ties"], clap["compared"]) == (1, 2)
    assert [w for w, *_ in fad["ahead"]] == ["bsa(floor=0,gamma=5)"] and fad["behind"] == []
    table = format_verdicts(summary)
    assert "| 25 | CLAP | – | (0, 5) -0.0100 [-0.0200, -0.0010] (seed 1) | 1 of 2 |" in table
    assert "| 25 | FAD vs teacher | (0, 5) -1.00 [-2.00, -0.50] (seed 1) | – | 0 of 1 |" in table
    assert table.rstrip().endswith("(5 % of each): 25 steps 2 of 3 (by chance ~0.2).")  # 0.05 · 3


def test_the_best_point_is_never_worse_and_most_often_better_and_changes_the_default_over_two_seeds():
    from bsa.report.study import best_point, format_best_point

    def d(mean, lo, hi):
        return {"mean": mean, "lo": lo, "hi": hi}

    def row(floor, gamma, seeds, **diffs):
        return {"family": {"floor": floor, "gamma": gamma}, "diff_to_bsa": diffs, "diff_seeds": seeds}

    summary = {
        "reference": "bsa",
        "seeds": [1, 2],
        "steps": {
            "25": {
                "bsa": {"family": {"floor": 1.0, "gamma": 5.0}},
                # better twice, but worse in accuracy: out
                "bsa(floor=0,gamma=5)": row(
                    0.0, 5.0, [1, 2], clap=d(0.01, 0.005, 0.02), fad_vs_teacher=d(-1.0, -2.0, -0.5),
                    attribute_acc=d(-0.01, -0.02, -0.001),
                ),
                "bsa(floor=0.1,gamma=5)": row(0.1, 5.0, [1, 2], clap=d(0.001, -0.001, 0.003)),
                "bsa(floor=0.1,gamma=1)": row(0.1, 1.0, [1], clap=d(0.004, 0.001, 0.007)),
            },
            "4": {
                "bsa": {"family": {"floor": 1.0, "gamma": 5.0}},
                "bsa(floor=0.1,gamma=5)": row(0.1, 5.0, [2], clap=d(0.003, 0.001, 0.006), fad_vs_teacher=d(-0.9, -1.6, -0.3)),
            },
        },
    }  # fmt: skip
    best = best_point(summary)
    assert best["weighting"] == "bsa(floor=0.1,gamma=5)"  # two wins against (0.1, 1)'s one
    assert [(w["steps"], w["score"]) for w in best["wins"]] == [(4, "CLAP"), (4, "FAD vs teacher")]
    assert best["measured_at"] == [25, 4] and best["change_default"] is False  # its wins: seed 2 alone
    text = format_best_point(summary)
    assert text.startswith("Best (never resolved worse than bsa, most often resolved better): (0.1, 5) — ")
    assert "CLAP at 4 steps +0.0030 [+0.0010, +0.0060] (seed 2)" in text and text.endswith(
        "Change the default (a win over ≥ 2 seeds): not on this evidence (every win on one seed)."
    )
    summary["steps"]["4"]["bsa(floor=0.1,gamma=5)"]["diff_seeds"] = [1, 2]  # the same win on two seeds
    assert best_point(summary)["change_default"] is True
    # a tie in the count of wins goes to the larger CLAP gain
    del summary["steps"]["4"]["bsa(floor=0.1,gamma=5)"]["diff_to_bsa"]["fad_vs_teacher"]
    summary["steps"]["25"]["bsa(floor=0.1,gamma=5)"]["diff_to_bsa"]["clap"] = d(0.0005, -0.001, 0.002)
    assert best_point(summary)["weighting"] == "bsa(floor=0.1,gamma=1)"  # +0.004 against +0.0035
    summary["steps"]["25"]["bsa(floor=0.1,gamma=1)"]["diff_to_bsa"]["attribute_acc"] = d(-0.01, -0.02, -0.001)
    summary["steps"]["4"]["bsa(floor=0.1,gamma=5)"]["diff_to_bsa"]["clap"] = d(-0.003, -0.006, -0.001)
    assert best_point(summary) is None
    assert format_best_point(summary) == (
        "Best: none — every weighting resolved better than bsa somewhere is resolved worse elsewhere."
    )


def test_a_fad_difference_of_fewer_seeds_is_taken_only_when_asked_and_names_its_seeds(tmp_path, capsys):
    """Seed 1's embeddings lost with its machine: with --fad-partial the study takes seed 0's paired
    FAD difference for a row paired on seeds 0 and 1, and says so in the row (``fad_diff_seeds``), its
    table cell and its verdict; without it, a one-line error."""
    from bsa.cli.main import main
    from bsa.report.study import format_verdicts, study_of_comparisons, verdicts

    write_comparison(tmp_path / "cmp", [r for r in records() if r["steps"] == 25])
    device = study_summary([r for r in records() if r["seed"] == 0])
    device["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"] = {"mean": -1.0, "lo": -2.0, "hi": -0.5}
    path = tmp_path / "device-seed0.json"
    path.write_text(json.dumps(device))
    s = study_of_comparisons([tmp_path / "cmp"], fad_from=[path], fad_partial=True)
    row = s["steps"]["25"]["min_snr"]
    assert row["diff_to_bsa"]["fad_vs_teacher"] == {"mean": -1.0, "lo": -2.0, "hi": -0.5}
    assert row["fad_diff_seeds"] == [0] and row["diff_seeds"] == [0, 1]
    assert "fad_diff_seeds" not in s["steps"]["25"]["snr_plus_one"]  # no FAD difference given
    assert s["fad_partial"] is True
    assert "| -1.00 [-2.00, -0.50] ✓ (seed 0) |" in format_study(s)
    fad = next(v for v in verdicts(s) if v["score"] == "FAD vs teacher")
    assert fad["ahead"][0][2] == [0]  # the seeds of the FAD difference, not the row's
    table = format_verdicts(s)
    assert "| 25 | FAD vs teacher | (0, 5) -1.00 [-2.00, -0.50] (seed 0) | – | 0 of 1 |" in table
    assert "| 25 | CLAP | (0, 5) +0.1000 [+0.1000, +0.1000] | – |" in table  # its seeds are the study's
    args = ["study", str(tmp_path / "cmp"), "--out", str(tmp_path / "out"), "--fad-differences", str(path)]
    assert main(args) == 2 and "--fad-partial" in capsys.readouterr().err
    assert main([*args, "--fad-partial"]) == 0
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["steps"]["25"]["min_snr"]["fad_diff_seeds"] == [0]


def test_fad_differences_here_and_given_cover_their_seeds_together(tmp_path):
    """A pooled study at home where one seed's embeddings were brought back and another's are given
    by its device summary (2026-11-29, seed 4 beside seeds 1–3): the paired FAD difference pools
    both seeds — as the study with every embedding here does — and is not silently replaced by the
    seed found here alone; a given seed whose embeddings are also here is taken once."""
    import torch
    from safetensors.torch import save_file

    from bsa.report.study import study_of_comparisons

    g = torch.Generator().manual_seed(5)
    folder, recs = tmp_path / "cmp", []
    for seed in (0, 1):
        teacher = torch.randn(300, 4, generator=g)
        seed_recs = [dict(record("bsa", seed, 25, [0.5], [1.0]), mode="teacher", stage=-1)]
        seed_recs += [record(w, seed, 25, [0.5], [1.0]) for w in ("bsa", "min_snr")]
        for r in seed_recs:
            name = "teacher" if r["mode"] == "teacher" else r["weighting"]
            e = (
                teacher
                if name == "teacher"
                else teacher + (0.5 if name == "bsa" else 0.2) * torch.randn(300, 4, generator=g)
            )
            (folder / r["run"] / "embeddings").mkdir(parents=True, exist_ok=True)
            save_file({"embedding": e}, str(folder / r["run"] / "embeddings" / f"{name}-{seed}.safetensors"))
            r["embedding_file"] = f"embeddings/{name}-{seed}.safetensors"
        recs += seed_recs
    write_comparison(folder, recs)
    both = study_of_comparisons([folder])["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"]
    # seed 0's device summary, computed where its embeddings were
    write_comparison(tmp_path / "seed0", [r for r in recs if r["seed"] == 0])
    for r in recs:
        if r["seed"] == 0:
            shutil.copytree(
                folder / r["run"] / "embeddings",
                tmp_path / "seed0" / r["run"] / "embeddings",
                dirs_exist_ok=True,
            )
    device = tmp_path / "device-seed0.json"
    device.write_text(json.dumps(study_of_comparisons([tmp_path / "seed0"])))
    # every embedding here and seed 0's given as well: the same difference (seed 0 taken once)
    s = study_of_comparisons([folder], fad_from=[device])
    assert s["steps"]["25"]["min_snr"]["diff_to_bsa"]["fad_vs_teacher"] == pytest.approx(both, rel=1e-9)
    # seed 0's embeddings gone from here: seed 1's found here and seed 0's given, pooled
    for r in recs:
        if r["seed"] == 0:
            shutil.rmtree(folder / r["run"] / "embeddings", ignore_errors=True)
    s = study_of_comparisons([folder], fad_from=[device])
    row = s["steps"]["25"]["min_snr"]
    assert row["diff_to_bsa"]["fad_vs_teacher"] == pytest.approx(both, rel=1e-9)
    assert "fad_diff_seeds" not in row
    with pytest.raises(ValueError, match=r"covers seeds \[1\], the study pairs seeds \[0, 1\]"):
        study_of_comparisons([folder])  # seed 0's neither here nor given: not taken silently


def test_a_study_over_several_devices_names_each_with_its_seeds():
    """Seeds measured on different machines (H200s, then an H100): the summary's device names them
    all, each with its seeds — not whichever record came first."""
    rs = records()
    for r in rs:
        if r["seed"] == 1:
            r["protocol"] = {**r["protocol"], "device": "NVIDIA H100 80GB HBM3"}
    s = study_summary(rs)
    assert s["device"] == "test (seed 0); NVIDIA H100 80GB HBM3 (seed 1)"
    assert study_summary([r for r in rs if r["seed"] == 1])["device"] == "NVIDIA H100 80GB HBM3"


def test_run_spans_count_from_a_runs_last_start_and_wrap_past_midnight():
    from bsa.report.timeline import run_spans

    log = "\n".join(
        [
            "[compare] 23:58:00 start guided-seed1, 16 thread(s) (log: …)",
            "[compare] 00:02:30 guided-seed1: done",
            "[compare] 00:02:30 start population-seed1-abc, 16 thread(s) (log: …)",
            "[compare] 00:10:00 population-seed1-abc: FAILED (exit 1, see …)",
            "[compare] 00:11:00 start population-seed1-abc, 16 thread(s) (log: …)",  # resumed
            "[compare] 00:20:05 population-seed1-abc: done",
        ]
    )
    assert run_spans(log) == {"guided-seed1": 270.0, "population-seed1-abc": 545.0}


def test_block_parts_split_the_set_up_the_members_stage_ends_and_their_scorings(tmp_path):
    """A population's console with the split set-up and stage-end lines, its members' scorings with
    their parts' seconds: the table sums each callback over the members and each scoring part over
    the members' records (the teacher's, shared by the population, left out)."""
    from bsa.report.timeline import block_parts

    (tmp_path / "compare.log").write_text(
        "[compare] 10:00:00 start population-seed6-abc, 16 thread(s) (log: …)\n"
        "[compare] 10:15:30 population-seed6-abc: done\n"
    )
    (tmp_path / "results.md").write_text("Wall clock 15.6 min\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "population-seed6-abc.log").write_text(
        "runs        x (the population's), members in x: a-seed6, b-seed6\n"
        "set-up      12.5 s (2 members: data module 8.0 s, teacher 0.5 s, scorer 4.0 s)\n"
        "stage 1: 50 steps × 4 × 2 students in 100.0 s of training = 4 samples/s in all (4 checkpoints (0.5 s of the training's))\n"
        "stage 2: 50 steps × 4 × 2 students in 90.0 s of training = 4 samples/s in all (1 checkpoint (0.3 s of the training's))\n"
        "  error profiles of 2 members in 1.5 s\n"
        "  member a-seed6: exported in 2.0 s (StagePromotion 0.5, ErrorProfile 1.5)\n"
        "  member b-seed6: exported in 3.0 s (StagePromotion 1.0, ErrorProfile 2.0)\n"
        "\r  error profiles of 2 members in 2.5 s\n"
        "  member a-seed6: exported and scored in 9.0 s (StagePromotion 0.5, ErrorProfile 1.5, StageEvaluation 7.0)\n"
        "  member b-seed6: exported and scored in 8.0 s (StagePromotion 0.5, ErrorProfile 1.0, StageEvaluation 6.5)\n"
    )
    for name, sampling in (("a-seed6", 2.0), ("b-seed6", 3.0)):
        run = tmp_path / name
        run.mkdir()
        stages = [
            {"stage": 1, "steps": 50, "train_seconds": 100.0},
            {"stage": 2, "steps": 25, "train_seconds": 90.0},
        ]
        (run / "summary.json").write_text(json.dumps({"stages": stages}))
        records = [
            {"mode": "teacher", "metrics": {"steps": 200, "seconds_sampling": 50.0}},
            {
                "mode": "student",
                "metrics": {
                    "steps": 25,
                    "seconds_sampling": sampling,
                    "seconds_paired": 1.0,
                    "seconds_per_clip": 0.1,
                },
            },
        ]
        (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = dict(block_parts(tmp_path))
    assert (
        rows["population-seed6-abc: set-up (2 members: data module 8.0 s, teacher 0.5 s, scorer 4.0 s)"]
        == "12.5 s"
    )
    assert (
        rows["members' exports at unscored stage ends (2 × 2.0–3.0 s; StagePromotion 2 s, ErrorProfile 4 s)"]
        == "5 s"
    )
    assert (
        rows[
            "members' exports and scores (2 × 8.0–9.0 s; StagePromotion 1 s, ErrorProfile 2 s, StageEvaluation 14 s;"
            " the scorings' sampling 5 s, paired 2 s)"
        ]
        == "17 s"
    )
    assert rows["members' error profiles, one pass a stage end (2 × 1.5–2.5 s)"] == "4 s"
    assert rows["checkpoints (5 saves; the training's waits)"] == "0.8 s"
    assert rows["stage 2 (to 25 steps): 2 students' training"] == "90.0 s"
    assert rows["population-seed6-abc: start to end"] == "15 min 30 s"
