import math

import pytest
import torch

from bsa.diffusion import WEIGHTINGS, get_weighting
from bsa.diffusion.weighting import family_point

INF = math.inf
SNR = torch.tensor([0.0, 1e-9, 0.3, 1.0, 2.5, 5.0, 7.0, 1e9, INF], dtype=torch.float64)

# hand-computed x-space weights at SNR = 0, 1e-9, 0.3, 1, 2.5, 5, 7, 1e9, ∞
EXPECTED = {
    "constant": [1, 1, 1, 1, 1, 1, 1, 1, 1],
    "snr": [0, 1e-9, 0.3, 1, 2.5, 5, 7, 1e9, INF],
    "truncated_snr": [1, 1, 1, 1, 2.5, 5, 7, 1e9, INF],
    "snr_plus_one": [1, 1 + 1e-9, 1.3, 2, 3.5, 6, 8, 1e9 + 1, INF],
    "min_snr": [0, 1e-9, 0.3, 1, 2.5, 5, 5, 5, 5],
    "bsa": [1, 1, 1, 1, 2.5, 5, 5, 5, 5],
    "smooth_bsa": [1, 1, 1, 1, 2.5 * 5 / 7.5, 2.5, 35 / 12, 5e9 / (1e9 + 5), 5],
}


def test_registry_is_complete():
    assert set(WEIGHTINGS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_values_and_limits(name):
    w = WEIGHTINGS[name](SNR)
    assert w.shape == SNR.shape and w.dtype == SNR.dtype
    torch.testing.assert_close(w, torch.tensor(EXPECTED[name], dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_limits_named(name):
    """SNR → 0 (high noise) and SNR → ∞ (low noise): bounded, vanishing or exploding as the paper reads them."""
    lo, hi = WEIGHTINGS[name](torch.tensor([1e-12, 1e12], dtype=torch.float64)).tolist()
    balanced = {"constant", "bsa", "smooth_bsa"}
    vanishes_at_high_noise = {"snr", "min_snr"}
    explodes_at_low_noise = {"snr", "truncated_snr", "snr_plus_one"}
    assert (lo < 1e-6) == (name in vanishes_at_high_noise)
    assert (hi > 1e6) == (name in explodes_at_low_noise)
    if name in balanced:
        assert 0.5 <= lo and hi <= 10


def test_bsa_spec_cases():
    """SPEC §5.1: w = floor for SNR ≤ floor, w = SNR in between, w = γ for SNR ≥ γ."""
    bsa = get_weighting("bsa", floor=0.5, gamma=3.0)
    snr = torch.tensor([0.1, 0.5, 1.7, 3.0, 40.0], dtype=torch.float64)
    assert bsa(snr).tolist() == [0.5, 0.5, 1.7, 3.0, 3.0]
    with pytest.raises(ValueError, match="floor"):
        get_weighting("bsa", floor=4.0, gamma=3.0)(snr)


def test_min_snr_gamma_and_unknown_name():
    assert get_weighting("min_snr", gamma=2.0, floor=9.0)(torch.tensor([10.0])).item() == 2.0
    with pytest.raises(ValueError, match="unknown weighting 'bsaa'"):
        get_weighting("bsaa")


def test_weightings_on_the_schedule(schedule):
    """On AudioLDM's grid SNR spans ≈ 0.005 … 666: BSA is 1 at the noisy end and 5 at the clean end."""
    snr = schedule.snr(torch.arange(1000))
    assert snr[-1].item() < 0.01 and snr[0].item() > 600
    w = WEIGHTINGS["bsa"](snr)
    assert w[0].item() == 5.0 and w[-1].item() == 1.0
    assert bool((w[1:] <= w[:-1]).all()), "monotone in noise level"


def test_x_space_factor_hand_values_and_the_teacher_loss_it_gives():
    from bsa.diffusion import x_space_factor

    snr = torch.tensor([0.25, 1.0, 4.0])
    assert x_space_factor(snr, "epsilon").tolist() == [0.25, 1.0, 4.0]
    assert x_space_factor(snr, "v_prediction").tolist() == [1.25, 2.0, 5.0]
    assert x_space_factor(snr, "sample").tolist() == [1.0, 1.0, 1.0]
    # plain ε-MSE is the "snr" x-space weight; Min-SNR-5 weights ε-MSE by min(SNR, 5)/SNR
    assert (WEIGHTINGS["snr"](snr) / x_space_factor(snr, "epsilon")).tolist() == [1.0, 1.0, 1.0]
    high = torch.tensor([20.0])
    assert (get_weighting("min_snr", gamma=5.0)(high) / x_space_factor(high, "epsilon")).item() == 0.25


def test_the_bsa_family_nests_the_baselines():
    """clip(SNR, floor, γ): floor = 0 is Min-SNR-γ, γ = ∞ with floor = 1 is truncated SNR,
    floor = γ = 1 is constant (hand values on the SNRs above, ∞ included)."""
    snr = torch.tensor(SNR)
    inf = float("inf")
    assert torch.equal(get_weighting("bsa", floor=0.0, gamma=5.0)(snr), WEIGHTINGS["min_snr"](snr))
    assert torch.equal(get_weighting("bsa", floor=1.0, gamma=inf)(snr), WEIGHTINGS["truncated_snr"](snr))
    assert torch.equal(get_weighting("bsa", floor=1.0, gamma=1.0)(snr), WEIGHTINGS["constant"](snr))
    assert get_weighting("smooth_bsa", floor=0.25, gamma=inf)(torch.tensor([0.0, 0.5, 7.0])).tolist() == [
        0.25,
        0.5,
        7.0,
    ]
    with pytest.raises(ValueError, match="gamma > 0"):
        get_weighting("bsa", floor=0.0, gamma=0.0)(snr)


def test_family_points_of_the_named_weightings_give_their_weights():
    """Each named weighting's (floor, γ) reproduces it through clip(SNR, floor, γ); SNR+1 and
    smooth BSA are not on the map."""
    snr = torch.tensor([0.0, 0.003, 0.5, 1.0, 3.0, 7.0, 300.0])
    assert family_point("min_snr", gamma=20) == (0.0, 20.0)
    assert family_point("bsa") == (1.0, 5.0)
    assert family_point("bsa", floor=0.1, gamma=math.inf) == (0.1, math.inf)
    for name in ("constant", "snr", "truncated_snr", "min_snr", "bsa"):
        floor, gamma = family_point(name)
        assert torch.equal(WEIGHTINGS["bsa"](snr, floor, gamma), WEIGHTINGS[name](snr)), name
    assert family_point("snr_plus_one") is None and family_point("smooth_bsa") is None


def test_what_a_weightings_name_alone_means():
    from bsa.diffusion.weighting import weighting_defaults

    assert weighting_defaults("bsa") == {"floor": 1.0, "gamma": 5.0}  # the paper's reading
    assert weighting_defaults("min_snr") == {"gamma": 5.0} and weighting_defaults("constant") == {}
    assert family_point("bsa", **weighting_defaults("bsa")) == family_point("bsa") == (1.0, 5.0)
