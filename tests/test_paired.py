"""Paired fidelity metrics against hand values."""

from __future__ import annotations

import math

import pytest
import torch

from bsa.metrics.embedded import AudioFeatures
from bsa.metrics.paired import bootstrap_mean_ci, paired_per_clip, summarise_paired


def test_bootstrap_of_a_constant_is_the_constant_and_intervals_shrink_with_clips():
    assert bootstrap_mean_ci(torch.full((50,), 0.3)) == pytest.approx((0.3, 0.3, 0.3))
    g = torch.Generator().manual_seed(0)
    few, many = torch.randn(25, generator=g), torch.randn(2500, generator=g)
    m, lo, hi = bootstrap_mean_ci(few)
    assert lo < m < hi
    # the interval of a mean of N unit-variance values is about ±1.96/√N
    m, lo, hi = bootstrap_mean_ci(many)
    assert hi - lo == pytest.approx(2 * 1.96 / math.sqrt(2500), rel=0.15)
    assert bootstrap_mean_ci(few, seed=3) == bootstrap_mean_ci(few, seed=3)  # reproducible


def _features(emb, logits, joint):
    return AudioFeatures(
        torch.tensor(emb), {"a": torch.tensor(logits[0]), "b": torch.tensor(logits[1])}, torch.tensor(joint)
    )


def test_paired_per_clip_hand_values():
    z_t = torch.zeros(2, 1, 2, 2)
    z = z_t.clone()
    z[0] += 2.0  # clip 0: every latent off by 2 → RMSE 2; clip 1 identical
    mel_t = torch.zeros(2, 4, 3)
    mel = mel_t.clone()
    mel[1, :2] = 1.0  # clip 1: half the bins off by 1 → L1 0.5
    teacher = _features(
        [[1.0, 0.0], [1.0, 0.0]],
        ([[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]),
        [[1.0, 0.0], [1.0, 0.0]],
    )
    student = _features(
        [[0.0, 1.0], [2.0, 0.0]],  # cosines 0 and 1
        ([[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]),  # clip 0 agrees on both heads, clip 1 on none
        [[0.0, 1.0], [1.0, 0.0]],
    )
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # teacher CLAP 1 and 1; student 0 and 1
    # the caption's attributes: head a class 0, head b class 1 — the teacher gets both right on
    # both clips, the student both on clip 0 and none on clip 1
    targets = {"a": torch.tensor([0, 0]), "b": torch.tensor([1, 1])}
    got = paired_per_clip(z, z_t, mel, mel_t, student, teacher, text, targets)
    assert got["acc_difference"].tolist() == [0.0, -1.0]
    assert "acc_difference" not in paired_per_clip(z, z_t, mel, mel_t, student, teacher, text)
    assert got["latent_rmse"].tolist() == [2.0, 0.0]
    assert got["mel_l1"].tolist() == [0.0, 0.5]
    assert got["embedding_cosine"].tolist() == pytest.approx([0.0, 1.0])
    assert got["attribute_agreement"].tolist() == [1.0, 0.0]
    assert got["clap_difference"].tolist() == pytest.approx([-1.0, 0.0])
    summary = summarise_paired(got)
    assert (
        summary["paired_latent_rmse"] == 1.0
        and summary["paired_latent_rmse_lo"] <= 1.0 <= summary["paired_latent_rmse_hi"]
    )
    assert set(summary) == {f"paired_{k}{s}" for k in got for s in ("", "_lo", "_hi")}


def test_per_clip_scores_keep_each_head_and_their_mean():
    """Records keep each head's correctness per clip (acc_<head>), so that a head's student −
    teacher difference is paired clip by clip; their mean over heads is acc_mean."""
    from bsa.metrics.paired import per_clip_scores

    features = _features(
        [[1.0, 0.0], [0.0, 1.0]],
        ([[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]),  # head a: classes 0, 1; head b: 1, 1
        [[1.0, 0.0], [1.0, 0.0]],
    )
    targets = {"a": torch.tensor([0, 0]), "b": torch.tensor([1, 1])}
    got = per_clip_scores(features, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), targets)
    assert got["acc_a"].tolist() == [1.0, 0.0] and got["acc_b"].tolist() == [1.0, 1.0]
    assert got["acc_mean"].tolist() == [1.0, 0.5]
    assert set(per_clip_scores(features, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), None)) == {"clap"}


def test_two_level_bootstrap_covers_a_shift_and_widens_with_seed_spread():
    from bsa.metrics.paired import two_level_bootstrap_ci

    g = torch.Generator().manual_seed(0)
    same = 0.02 + 0.01 * torch.randn(3, 400, generator=g)  # three seeds agreeing on a +0.02 shift
    mean, lo, hi = two_level_bootstrap_ci(same)
    assert lo < 0.02 < hi and lo > 0 and mean == pytest.approx(float(same.mean()))
    spread = same + torch.tensor([[-0.05], [0.0], [0.05]])  # the seeds disagree: wider, no longer resolved
    _, lo2, hi2 = two_level_bootstrap_ci(spread)
    assert hi2 - lo2 > 3 * (hi - lo) and lo2 < 0 < hi2
    one = two_level_bootstrap_ci(same[:1])  # one seed: the captions' bootstrap alone
    assert one[1] < one[0] < one[2]
    with pytest.raises(ValueError, match="seeds, captions"):
        two_level_bootstrap_ci(torch.zeros(5))


def test_weighting_differences_pair_seeds_and_mark_resolved_ones():
    from bsa.report.tables import format_differences, weighting_differences

    def rec(w, seed, clap):
        return {
            "mode": "progressive",
            "weighting": w,
            "steps": 4,
            "seed": seed,
            "per_clip": {"clap": clap, "acc_mean": [1.0] * 4},
        }

    records = [
        rec("bsa", 0, [0.5, 0.6, 0.7, 0.8]),
        rec("bsa", 1, [0.5, 0.6, 0.7, 0.8]),
        rec("min_snr", 0, [0.6, 0.7, 0.8, 0.9]),  # +0.1 on every clip of both seeds
        rec("min_snr", 1, [0.6, 0.7, 0.8, 0.9]),
        rec("constant", 0, [0.5, 0.6, 0.7, 0.8]),  # seed 1 missing: paired on seed 0 only
        {"mode": "guided", "weighting": "bsa", "steps": 8, "seed": 0, "per_clip": {"clap": [0.0] * 4}},
    ]
    d = weighting_differences(records, "bsa")
    assert sorted(d) == [("constant", 4), ("min_snr", 4)]
    assert d[("min_snr", 4)]["seeds"] == [0, 1] and d[("constant", 4)]["seeds"] == [0]
    assert d[("min_snr", 4)]["clap"] == pytest.approx((0.1, 0.1, 0.1))
    assert d[("constant", 4)]["clap"] == (0.0, 0.0, 0.0) and d[("min_snr", 4)]["acc_mean"] == (0.0, 0.0, 0.0)
    text = format_differences(d)
    assert "| min_snr | 4 | 2 | +0.1000 [+0.1000, +0.1000] ✓ |" in text
    assert "| constant | 4 | 1 | +0.0000 [+0.0000, +0.0000] |" in text


def test_stage_scorer_fad_intervals_need_as_many_clips_as_dimensions():
    from types import SimpleNamespace

    from bsa.callbacks.evaluation import StageScorer

    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(40, 5, generator=g, dtype=torch.float64)
    other = teacher + 0.3 * torch.randn(40, 5, generator=g, dtype=torch.float64)
    student = teacher + 0.6 * torch.randn(40, 5, generator=g, dtype=torch.float64)
    scorer = SimpleNamespace(
        teacher_clips={"embedding": teacher, "embedding_other": other},
        fad_floor=0.2,
        set=SimpleNamespace(seeds=[1234]),
        device="cpu",
        _half_samples=None,
    )
    scorer.teacher_half_samples = lambda: StageScorer.teacher_half_samples(scorer)
    metrics = {"fad_teacher": 0.8, "fad_teacher_floor": 0.2, "fad_teacher_ratio": 4.0}
    got = StageScorer.fad_intervals(scorer, student, metrics)
    for name, point in metrics.items():  # centred on the full-set estimate, ±1.96 SE
        assert got[f"{name}_se"] > 0
        assert got[f"{name}_lo"] == pytest.approx(point - 1.959964 * got[f"{name}_se"])
        assert got[f"{name}_hi"] == pytest.approx(point + 1.959964 * got[f"{name}_se"])
    # the student is further from the teacher than the teacher's own redraw: a wider spread too
    assert got["fad_teacher_se"] > got["fad_teacher_floor_se"]
    assert StageScorer.fad_intervals(scorer, student[:4], metrics) == {}  # 4 clips < 5 dimensions
