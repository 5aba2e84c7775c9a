"""The fidelity summary (results/fidelity/summary.json) from runs' records, against hand values."""

from __future__ import annotations

import json
import math

import pytest

from bsa.cli.fidelity import main as fidelity_main
from bsa.report.fidelity import fidelity_summary, pooled_estimate


def _teacher(clap):
    return {
        "stage": -1,
        "mode": "teacher",
        "steps": 200,
        "per_clip": {"clap": clap, "acc_mean": [1.0] * len(clap)},
        "metrics": {"clap": sum(clap) / len(clap), "acc_mean": 1.0, "fad_teacher_floor": 2.0},
        "protocol": {"num_clips": len(clap), "device": "NVIDIA H100 80GB HBM3"},
    }


def _student(stage, mode, steps, seed, clap, acc, fad, se):
    return {
        "stage": stage,
        "mode": mode,
        "steps": steps,
        "seed": seed,
        "per_clip": {"clap": clap, "acc_mean": acc},
        "metrics": {
            "nfe": steps,
            "fad_teacher": fad,
            "fad_teacher_se": se,
            "fad_teacher_floor": 2.0,
            "fad_teacher_floor_se": 0.1,
            "fad_teacher_ratio": fad / 2.0,
            "fad_teacher_ratio_se": se / 2.0,
        },
    }


def _runs():
    t = _teacher([0.5, 0.5, 0.5, 0.5])
    return [
        [
            t,
            _student(0, "guided", 200, 0, [0.4] * 4, [1.0, 1.0, 0.5, 1.0], 2.0, 0.5),
            _student(1, "progressive", 100, 0, [0.3] * 4, [1.0] * 4, 3.0, 0.5),
        ],
        [
            t,
            _student(0, "guided", 200, 1, [0.4] * 4, [1.0, 1.0, 1.0, 0.5], 4.0, 0.5),
            # seed 1 never reached 100 steps: that row is seed 0's alone
        ],
    ]


def test_fidelity_summary_hand_values():
    s = fidelity_summary(_runs())
    assert list(s["steps"]) == ["200 guided", "100"] and s["seeds"] == [0, 1] and s["captions"] == 4
    assert s["steps"]["100"]["seeds"] == [0] and s["steps"]["100"]["clap_delta"]["mean"] == pytest.approx(
        -0.2
    )
    assert s["steps"]["100"]["fad_vs_teacher"] == pytest.approx(
        {"mean": 3.0, "lo": 3 - 1.959964 * 0.5, "hi": 3 + 1.959964 * 0.5}
    )
    row = s["steps"]["200 guided"]
    assert row["seeds"] == [0, 1]
    assert row["clap_delta"] == pytest.approx({"mean": -0.1, "lo": -0.1, "hi": -0.1})
    # one clip in four lost half its attributes in each seed: −0.125 on average
    assert row["attribute_acc_delta"]["mean"] == pytest.approx(-0.125)
    assert row["attribute_acc_delta"]["lo"] < -0.125 < row["attribute_acc_delta"]["hi"] <= 0
    # FAD: mean of the seeds (2, 4) = 3; SE² = 0.5² (within) + var(2, 4)/2 = 0.25 + 1
    se = math.sqrt(1.25)
    assert row["fad_vs_teacher"] == pytest.approx(
        {"mean": 3.0, "lo": 3 - 1.959964 * se, "hi": 3 + 1.959964 * se}
    )
    assert row["fad_floor"]["mean"] == 2.0 and row["fad_ratio"]["mean"] == pytest.approx(1.5)
    assert s["fad_note"] is None and s["device"].startswith("NVIDIA")
    assert pooled_estimate([1.0], [None]) is None  # too few clips for a standard error: no interval


def test_attribute_shift_pairs_heads_clip_by_clip_or_gives_the_range_over_seeds():
    """Per head, student − teacher: paired per clip (bootstrap) where every record keeps the head's
    per-clip correctness; from the records' means, with their range over seeds, where one does not
    (records before 2026-11-29); FAD vs real as teacher → student, mean and range over seeds."""
    from bsa.report.fidelity import attribute_shift, format_attribute_shift

    def teacher(loud):
        return {
            "mode": "teacher",
            "steps": 200,
            "per_clip": {"acc_loudness": loud},
            "metrics": {"acc_loudness": sum(loud) / 4, "acc_pitch": 1.0, "acc_mean": 1.0, "fad_real": 30.0},
        }

    def student(seed, loud, pitch, fad):
        return {
            "mode": "progressive",
            "steps": 25,
            "seed": seed,
            "per_clip": {"acc_loudness": loud},
            "metrics": {"acc_loudness": sum(loud) / 4, "acc_pitch": pitch, "acc_mean": 1.0, "fad_real": fad},
        }

    t = teacher([0.0, 0.0, 1.0, 1.0])
    runs = [
        [t, student(0, [1.0, 0.0, 1.0, 1.0], 0.9, 20.0)],
        [t, student(1, [1.0, 1.0, 1.0, 1.0], 0.7, 24.0)],
    ]
    row = attribute_shift(runs)["25"]
    # loudness paired: +1 on one clip of four in seed 0, on two in seed 1 → mean +0.375
    assert row["acc_loudness"]["interval"] == "95 % bootstrap"
    assert row["acc_loudness"]["mean"] == pytest.approx(0.375)
    assert 0.0 <= row["acc_loudness"]["lo"] < 0.375 < row["acc_loudness"]["hi"] <= 1.0
    # pitch has no per-clip record: the mean of −0.1 and −0.3, the range over seeds
    assert row["acc_pitch"] == pytest.approx(
        {"mean": -0.2, "lo": -0.3, "hi": -0.1, "interval": "range over seeds"}
    )
    assert row["fad_real"] == pytest.approx(
        {"mean": 22.0, "lo": 20.0, "hi": 24.0, "interval": "range over seeds"}
    )
    assert row["fad_real_teacher"]["mean"] == 30.0 and row["seeds"] == [0, 1]
    table = format_attribute_shift(attribute_shift(runs))
    assert (
        "| 25 | 0,1 | +0.375 [" in table
        and "| 30.0 → 22.0 [20.0, 24.0] | 95 % bootstrap, range over seeds |" in table
    )
    # one seed has no range over seeds: its values alone, not a degenerate [x, x]
    one = attribute_shift(runs[:1])["25"]
    assert one["fad_real"] == {"mean": 20.0, "interval": "one seed"}
    assert one["acc_pitch"]["mean"] == pytest.approx(-0.1) and "lo" not in one["acc_pitch"]
    assert "| 30.0 → 20.0 | 95 % bootstrap, one seed |" in format_attribute_shift(attribute_shift(runs[:1]))
    # records that keep the silence floor (from 2026-11-29) get its column, teacher → student
    assert "silence floor" not in format_attribute_shift(attribute_shift(runs))
    t["metrics"]["silence_floor_dbfs"] = -60.0
    runs[0][1]["metrics"]["silence_floor_dbfs"] = -80.0
    runs[1][1]["metrics"]["silence_floor_dbfs"] = -90.0
    table = format_attribute_shift(attribute_shift(runs))
    assert "| silence floor (dBFS): teacher → student |" in table
    assert "| 30.0 → 22.0 [20.0, 24.0] | -60 → -85 [-90, -80] |" in table


def test_runs_scored_through_another_waveform_path_are_not_pooled():
    """Seed 0's chain rerun after Griffin-Lim's half-hop fix (2026-11-28) scored its teacher 0.8731
    CLAP where the runs before it scored the same teacher 0.8745: pooled with seeds 1 and 2 it would
    have mixed two measurements silently. A record's protocol names its waveform path, and a
    summary refuses to pool records whose protocols differ in what they measured (not in where)."""
    from bsa.report.records import WAVEFORM_BEFORE, check_one_measurement, measurement

    before, after = _runs()
    after = [
        dict(r, protocol={**r["protocol"], "waveform": "GriffinLimVocoder, waveform format 2"})
        if "protocol" in r
        else r
        for r in after
    ]
    for r in after:
        r["run"] = "s0"
    with pytest.raises(ValueError, match=r"'s0'.*waveform: .*format 1.* against .*format 2"):
        fidelity_summary([before, after])
    # where a run was measured is not what it measured: another device pools
    first, second = _runs()
    moved = [
        dict(r, protocol={**r["protocol"], "device": "NVIDIA H200"}) if "protocol" in r else r for r in second
    ]
    assert fidelity_summary([first, moved])["seeds"] == [0, 1]
    assert measurement(before[0])["waveform"] == WAVEFORM_BEFORE and "device" not in measurement(before[0])
    check_one_measurement([r for r in after if r.get("protocol")])
    # records from before the protocol named the waveform path have the one of their date
    dated = {"protocol": {"num_clips": 4}, "date": "2026-11-28 19:59:41"}
    assert measurement(dated)["waveform"] == "GriffinLimVocoder, waveform format 2"
    assert measurement(dict(dated, date="2026-11-28 17:37:49"))["waveform"] == WAVEFORM_BEFORE


def test_fidelity_cli_writes_the_summary_and_names_a_missing_record(tmp_path, capsys):
    for i, records in enumerate(_runs()):
        (tmp_path / f"seed{i}").mkdir()
        (tmp_path / f"seed{i}" / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "fidelity"
    runs = [str(tmp_path / "seed0"), str(tmp_path / "seed1")]
    assert fidelity_main([*runs, "--out", str(out), "--command", "make distill STEPS=1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "make distill STEPS=1" and summary["runs"] == runs
    assert {"date", "device", "captions", "seeds"} <= set(summary)
    assert "| 200 guided | 200 | 0,1 | -0.1000 [-0.1000, -0.1000]" in (out / "summary.md").read_text()
    assert fidelity_main([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("nowhere/eval.jsonl: no such file")


def test_the_run_summary_shows_each_student_paired_with_the_teacher_with_intervals():
    from bsa.report.tables import format_paired_rows

    rows = [
        {"row": "teacher @ 8 (CFG)", "steps": 8, "clap": 0.5},  # nothing paired: not a row
        {
            "row": "stage 1 student @ 4",
            "steps": 4,
            "paired_clap_difference": -0.01,
            "paired_clap_difference_lo": -0.02,
            "paired_clap_difference_hi": 0.0,
            "fad_teacher_ratio": 1.5,
        },
    ]
    lines = format_paired_rows(rows)
    assert lines[2] == "| model | steps | Δ CLAP | FAD vs teacher / floor |"
    assert lines[4] == "| stage 1 student @ 4 | 4 | -0.0100 [-0.0200, +0.0000] | 1.50 |"
    assert len(lines) == 6 and format_paired_rows(rows[:1]) == []


def _recipe_run(folder, clap, embedding, teacher_embedding, seed=0):
    """A run folder of one seed: the teacher and a 4-step student, both with kept embeddings."""
    from bsa.callbacks.evaluation import save_embedding

    teacher = _teacher([0.5, 0.5, 0.5, 0.5]) | {
        "embedding_file": save_embedding(folder, "teacher", teacher_embedding)
    }
    student = _student(1, "progressive", 4, seed, clap, [1.0] * 4, 3.0, 0.5)
    student["embedding_file"] = save_embedding(folder, "stage01_4steps", embedding)
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (teacher, student)))
    return [teacher, student]


def test_recipe_differences_are_paired_clip_by_clip_and_on_shared_half_samples(tmp_path):
    import torch

    from bsa.report.fidelity import recipe_differences

    teacher = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    a, b = tmp_path / "a", tmp_path / "b"
    runs_a = [(a, _recipe_run(a, [0.6, 0.5, 0.5, 0.5], teacher.clone(), teacher))]
    runs_b = [(b, _recipe_run(b, [0.5, 0.5, 0.5, 0.3], teacher + 0.5, teacher))]  # the mean moved by 0.5
    row = recipe_differences(runs_a, runs_b)["4"]
    assert row["seeds"] == [0] and row["clap_delta"]["mean"] == pytest.approx(0.075)  # (0.1 + 0.2) / 4
    # FD(a, teacher) = 0 and FD(b, teacher) = |shift|² = 4 · 0.25 on every half-sample too: no spread
    assert row["fad_vs_teacher_delta"] == pytest.approx({"mean": -1.0, "lo": -1.0, "hi": -1.0}, abs=1e-4)
    # without kept embeddings the FAD difference is left out, the per-clip ones stay
    (b / "embeddings" / "stage01_4steps.safetensors").unlink()
    assert "fad_vs_teacher_delta" not in recipe_differences(runs_a, runs_b)["4"]
    # runs that scored other captions or noise are not paired
    runs_b[0][1][0]["per_clip"]["clap"] = [0.4] * 4
    with pytest.raises(ValueError, match="did not score the same captions"):
        recipe_differences(runs_a, runs_b)


def test_fidelity_cli_against_another_recipe_writes_the_differences(tmp_path):
    import torch

    teacher = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    for name, shift in (("a", 0.0), ("b", 0.5)):
        (tmp_path / name).mkdir()
        _recipe_run(tmp_path / name, [0.5] * 4, teacher + shift, teacher)
    out = tmp_path / "out"
    assert fidelity_main([str(tmp_path / "a"), "--against", str(tmp_path / "b"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["differences"]["against"] == [str(tmp_path / "b")]
    assert summary["differences"]["steps"]["4"]["fad_vs_teacher_delta"]["mean"] == pytest.approx(
        -1.0, abs=1e-4
    )
    assert (
        "| 4 | 0 | +0.0000 [+0.0000, +0.0000] | +0.0000 [+0.0000, +0.0000] | -1.00 [-1.00, -1.00] |"
        in (out / "summary.md").read_text()
    )


def test_guidance_interval_table_rows_are_the_interval_runs_against_the_teacher_guided_everywhere():
    """One row per t_hi, highest first, after the teacher's: the paired differences with their
    intervals as measured, the per-head differences of the means against the teacher's."""
    from bsa.report.fidelity import format_guidance_interval

    teacher = {"nfe": 400, "fad_real": 32.04, "acc_loudness": 0.925, "acc_background": 0.939}

    def run(t_hi, nfe, clap, loud, back):
        r = {
            "nfe": nfe,
            "fad_real": 30.0 + t_hi / 1000,
            "fad_teacher_ratio": 1.5,
            "silence_floor_dbfs": -88.6,
        }
        r |= {
            "paired_clap_difference": clap,
            "paired_clap_difference_lo": clap - 0.01,
            "paired_clap_difference_hi": clap + 0.01,
        }
        r |= {
            "paired_acc_difference": 0.0,
            "paired_acc_difference_lo": -0.002,
            "paired_acc_difference_hi": 0.002,
        }
        r |= {"acc_loudness": loud, "acc_background": back}
        return {"protocol": {"guidance_interval": [0, t_hi]}, "results": {"model @ 200 steps": r}}

    lines = format_guidance_interval(
        teacher, [run(500, 300, -0.05, 0.9, 0.8), run(900, 380, -0.006, 0.95, 0.939)]
    )
    rows = lines.splitlines()[2:]
    assert rows[0] == "| everywhere (the teacher) | 400 | – | – | – | – | – | 32.0 | – |"
    with_floor = format_guidance_interval(teacher | {"silence_floor_dbfs": -125.2}, [])
    assert (
        with_floor.splitlines()[2] == "| everywhere (the teacher) | 400 | – | – | – | – | – | 32.0 | -125 |"
    )
    assert rows[1] == (
        "| t ≤ 900 | 380 | -0.0060 [-0.0160, +0.0040] | +0.000 [-0.002, +0.002] | 1.50 | +0.025 | +0.000 | 30.9 | -89 |"
    )
    assert rows[2].startswith("| t ≤ 500 | 300 | -0.0500 [") and "| -0.025 | -0.139 | 30.5 |" in rows[2]


def test_accuracy_by_label_splits_each_head_by_the_captions_label():
    """Per head and caption label, the teacher's accuracy and each column's (students per step
    count, other models), with the difference to the teacher paired clip by clip; a student record
    without the head per clip is left out."""
    from bsa.report.fidelity import accuracy_by_label, format_accuracy_by_label

    def record(mode, steps, loud, seed=0):
        return {"mode": mode, "steps": steps, "seed": seed, "per_clip": {"acc_loudness": loud}, "metrics": {}}

    teacher = record("teacher", 200, [1.0, 0.0, 1.0, 0.0])
    runs = [
        [teacher, record("progressive", 4, [1.0, 1.0, 1.0, 0.0])],
        [teacher, record("progressive", 4, [1.0, 1.0, 0.0, 1.0], seed=1)],
        [
            teacher,
            {"mode": "progressive", "steps": 4, "seed": 2, "per_clip": {"clap": [0.5] * 4}, "metrics": {}},
        ],
    ]
    table = accuracy_by_label(runs, {"loudness": ["loud", "quiet", "loud", "quiet"]})
    loud, quiet = table["loudness"]["loud"], table["loudness"]["quiet"]
    assert loud["clips"] == 2 and loud["teacher"] == 1.0 and quiet["teacher"] == 0.0
    assert loud["4"]["accuracy"] == 0.75 and quiet["4"]["accuracy"] == 0.75  # seeds 0 and 1: 1, ½ / ½, 1
    assert loud["4"]["delta"]["mean"] == -0.25 and quiet["4"]["delta"]["mean"] == 0.75
    assert -1.0 <= loud["4"]["delta"]["lo"] <= -0.25 <= loud["4"]["delta"]["hi"] <= 0.0
    text = format_accuracy_by_label(table, ("4", "1"))
    assert "| loudness | quiet | 2 | 0.000 | 0.750 (+0.750 [" in text and text.endswith("| – |")
    # another model on the first clips (bsa evaluate's per-clip scores): the table keeps to them
    first = accuracy_by_label(
        runs, {"loudness": ["loud", "quiet"]}, {"teacher @ 4": {"acc_loudness": [0.0, 1.0]}}
    )
    assert first["loudness"]["quiet"]["clips"] == 1
    assert first["loudness"]["quiet"]["teacher @ 4"] == {
        "accuracy": 1.0,
        "delta": {"mean": 1.0, "lo": 1.0, "hi": 1.0},
    }


def test_score_by_label_pairs_two_models_clip_by_clip_per_label():
    from bsa.report.fidelity import score_by_label

    reference = {"level_db": [-20.0, -30.0, -22.0, -34.0, 0.0]}
    model = {"level_db": [-21.0, -36.0, -23.0, -38.0, 5.0]}  # the fifth clip is past the labels
    out = score_by_label(model, reference, ["loud", "quiet", "loud", "quiet"], "level_db")
    assert out["loud"]["clips"] == 2 and out["loud"]["reference"] == -21.0 and out["loud"]["model"] == -22.0
    assert out["loud"]["delta"] == {"mean": -1.0, "lo": -1.0, "hi": -1.0}
    assert out["quiet"]["delta"]["mean"] == -5.0 and -6.0 <= out["quiet"]["delta"]["lo"] <= -5.0
