import math

import numpy as np
import pytest
import torch

from bsa.metrics.frechet import (
    GaussianStats,
    frechet_distance,
    frechet_from_stats,
    normal_interval,
    paired_frechet_half_samples,
)
from bsa.metrics.scores import attribute_accuracy, clap_score, inception_score


def gaussian(seed, n=300, d=6, shift=0.0):
    g = np.random.default_rng(seed)
    a = g.standard_normal((d, d))
    return g.standard_normal((n, d)) @ a + shift


def test_frechet_hand_values():
    # 1-D: d² = (μ1 − μ2)² + σ1² + σ2² − 2σ1σ2
    assert frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])
    ) == pytest.approx(4 + 4 + 1 - 2 * 2 * 1)
    x = gaussian(0)
    assert frechet_distance(
        x.mean(0), np.cov(x, rowvar=False), x.mean(0), np.cov(x, rowvar=False)
    ) == pytest.approx(0, abs=1e-6)


def test_sufficient_statistics_match_numpy_and_add_across_batches():
    x = gaussian(1)
    stats = GaussianStats.empty(6)
    for chunk in np.array_split(x, 7):  # as if from several batches or ranks
        stats.update(torch.from_numpy(chunk))
    mu, cov = stats.mean_cov()
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-10)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-10)


def test_frechet_agrees_with_frechet_audio_distance():
    """The library's own arithmetic on the same embeddings (imported lazily, offline)."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from frechet_audio_distance import FrechetAudioDistance

    a, b = gaussian(2), gaussian(3, shift=0.7)
    ours_a, ours_b = GaussianStats.empty(6), GaussianStats.empty(6)
    ours_a.update(torch.from_numpy(a))
    ours_b.update(torch.from_numpy(b))
    theirs = FrechetAudioDistance.calculate_frechet_distance(
        None, a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )
    assert frechet_from_stats(ours_a, ours_b) == pytest.approx(float(theirs), rel=1e-9)


def test_inception_score_bounds():
    assert inception_score(torch.full((10, 4), 0.25)) == pytest.approx(1.0)
    assert inception_score(torch.eye(4).repeat(3, 1)) == pytest.approx(4.0, rel=1e-6)


def test_clap_score_and_accuracy():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert clap_score(a, t) == pytest.approx((1.0 + 2**-0.5) / 2)
    acc = attribute_accuracy(
        {"pitch": torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]])}, {"pitch": torch.tensor([0, 1, 1])}
    )
    assert acc == {"pitch": pytest.approx(2 / 3)}


def test_identical_statistics_are_exactly_zero_apart_even_when_rank_deficient():
    """4 clips of a 256-d embedding: Σ has rank 3, and sqrtm(Σ²) is only accurate to rounding
    noise, yet the distance of a set to itself is 0 (the teacher scored against itself)."""
    e = torch.randn(4, 256, generator=torch.Generator().manual_seed(0)) * 10
    a, b = GaussianStats.empty(256), GaussianStats.empty(256)
    a.update(e)
    b.update(e.clone())
    assert frechet_from_stats(a, b) == 0.0
    shifted = GaussianStats.empty(256)
    shifted.update(e + 1.0)  # same covariance, mean moved by 1 in each of 256 dimensions
    assert frechet_from_stats(a, shifted) == pytest.approx(256.0, abs=0.1)


def test_noise_floor_hand_values():
    from bsa.metrics.scores import clip_noise_floor_db

    def noise_floor_dbfs(waves):  # the median over clips, as silence_floor takes it
        return float(clip_noise_floor_db(waves).median())

    square = torch.ones(1, 4000)
    square[:, ::2] = -1  # RMS 1 = 0 dBFS
    assert noise_floor_dbfs(square) == pytest.approx(0.0, abs=1e-9)
    quiet = torch.full((1, 4000), 0.001)  # -60 dBFS everywhere
    assert noise_floor_dbfs(quiet) == pytest.approx(-60.0, abs=1e-6)
    burst = quiet.clone()
    burst[:, :400] = 1.0  # one loud frame of ten: the 10 % quantile stays at the floor
    assert noise_floor_dbfs(burst) == pytest.approx(-60.0, abs=1e-6)
    clips = torch.cat([quiet, quiet * 10, quiet * 100])  # -60, -40, -20 dBFS: the median
    assert noise_floor_dbfs(clips) == pytest.approx(-40.0, abs=1e-6)


def test_silence_floor_is_the_median_floor_of_the_clips_captioned_in_silence():
    from bsa.metrics.scores import clip_noise_floor_db, silence_floor

    quiet = torch.full((1, 4000), 0.001)
    floors = clip_noise_floor_db(torch.cat([quiet, quiet * 10, quiet * 100, quiet * 1000]))
    assert floors.tolist() == pytest.approx([-60.0, -40.0, -20.0, 0.0], abs=1e-6)
    captions = ["a bell in silence", "a dog over a hum", "a horn in silence", "a bird in silence"]
    assert silence_floor(floors, captions) == {"silence_floor_dbfs": pytest.approx(-20.0, abs=1e-6)}
    assert silence_floor(floors, ["a dog over a hum"] * 4) == {}


def test_clip_levels_hand_values():
    from bsa.metrics.scores import clip_levels

    square = torch.ones(1, 4000)
    square[:, ::2] = -1  # RMS 1: 0 dBFS throughout
    burst = torch.full((1, 4000), 0.001)
    burst[:, :400] = 1.0  # one frame of ten at full scale over -60 dBFS
    levels = clip_levels(torch.cat([square, burst]))
    # the burst's RMS: sqrt((400·1 + 3600·1e-6) / 4000) = sqrt(0.1 + 9e-7) → -10.0 dBFS
    assert levels["level_db"].tolist() == pytest.approx([0.0, 10 * math.log10(0.1 + 9e-7)], abs=1e-9)
    assert levels["noise_floor_db"].tolist() == pytest.approx([0.0, -60.0], abs=1e-6)


def test_half_sample_replicates_are_the_frechet_distance_of_each_half():
    a = torch.from_numpy(gaussian(2, n=40, d=5))
    b = torch.from_numpy(gaussian(3, n=40, d=5, shift=0.5))
    reps = paired_frechet_half_samples({"ab": (a, b), "ba": (b, a)}, num_replicates=6, seed=7, chunk=4)
    g = torch.Generator().manual_seed(7)  # the same draws: one random half of the clips per replicate
    for r in range(6):
        keep = torch.randperm(40, generator=g)[:20].numpy()
        x, y = a.numpy()[keep], b.numpy()[keep]
        want = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
        assert float(reps["ab"][r]) == pytest.approx(want, rel=1e-7)
    # every pair sees the same halves: the distance is symmetric, so the replicates are equal
    torch.testing.assert_close(reps["ab"], reps["ba"])
    with pytest.raises(ValueError, match="at least 4 clips"):
        paired_frechet_half_samples({"ab": (a[:3], b[:3])})


def test_normal_interval_hand_values():
    assert normal_interval(1.0, 0.5) == pytest.approx((1.0 - 1.959964 * 0.5, 1.0 + 1.959964 * 0.5))
    assert normal_interval(2.0, 0.0) == (2.0, 2.0)


def test_a_paired_frechet_difference_has_a_smaller_error_than_the_two_distances_apart():
    """Two models whose clips share most of their deviation from the reference (the same captions
    and noise): the difference of their FDs is estimated on shared half-samples, so the clip draw
    cancels and its standard error is well below that of either distance."""
    from bsa.metrics.frechet import embedding_frechet, paired_frechet_difference, paired_frechet_half_samples

    g = torch.Generator().manual_seed(0)
    reference = torch.randn(400, 8, generator=g, dtype=torch.float64)
    common = 0.8 * torch.randn(400, 8, generator=g, dtype=torch.float64)
    a = reference + common + 0.1 * torch.randn(400, 8, generator=g, dtype=torch.float64)
    b = reference + common + 0.3 * torch.randn(400, 8, generator=g, dtype=torch.float64)
    diff, se = paired_frechet_difference(a, b, reference, seed=3)
    assert diff == pytest.approx(embedding_frechet(a, reference) - embedding_frechet(b, reference))
    assert diff < 0  # a is the closer one
    reps = paired_frechet_half_samples({"a": (a, reference), "b": (b, reference)}, seed=3)
    assert se < 0.5 * min(float(reps["a"].std()), float(reps["b"].std()))
    assert paired_frechet_difference(a, a, reference) == (0.0, 0.0)  # a model against itself


def test_frechet_distance_says_nothing_on_the_console(recwarn):
    """scipy 1.16+ warns that sqrtm's ``disp`` is deprecated on every FAD: nothing a user can act
    on, so it must not reach a run's console (README "what a user installs and sees")."""
    import warnings

    import numpy as np

    from bsa.metrics.frechet import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert d > 3.0 and not recwarn.list


def test_the_teachers_half_samples_are_prepared_once_and_measure_as_the_pairwise_replicates(monkeypatch):
    """A stage's students and the teacher's floor are measured against one teacher reference: its
    side of the half-sample replicates is decomposed once (per teacher outputs), and the replicates
    are those of the pairwise computation."""
    from types import SimpleNamespace

    import bsa.callbacks.evaluation as evaluation
    from bsa.callbacks.evaluation import StageScorer

    g = torch.Generator().manual_seed(0)
    teacher, other, student = (torch.randn(40, 5, generator=g, dtype=torch.float64) for _ in range(3))
    built = []
    real = evaluation.HalfSampleReplicates
    monkeypatch.setattr(evaluation, "HalfSampleReplicates", lambda *a, **k: built.append(1) or real(*a, **k))
    scorer = SimpleNamespace(
        teacher_clips={"embedding": teacher, "embedding_other": other},
        _half_samples=None,
        device="cpu",
        set=SimpleNamespace(seeds=[3]),
    )
    reference, floor = StageScorer.teacher_half_samples(scorer)
    want = paired_frechet_half_samples({"s": (student, teacher), "floor": (other, teacher)}, seed=3)
    torch.testing.assert_close(reference.distances(student), want["s"])
    torch.testing.assert_close(floor, want["floor"])
    assert StageScorer.teacher_half_samples(scorer)[0] is reference and len(built) == 1
    scorer.teacher_clips = {"embedding": other, "embedding_other": teacher}  # new teacher outputs
    assert StageScorer.teacher_half_samples(scorer)[0] is not reference and len(built) == 2
    with pytest.raises(ValueError, match="must be paired"):
        reference.distances(student[:20])
