import math

import numpy as np
import pytest
import torch
from _helpers import audioldm_ddim

from bsa.diffusion import CLEAN, next_timestep, step_grid, step_pairs, teacher_midpoint

PLAN_STEPS = [200, 100, 50, 25]


def test_alphas_cumprod_hand_computed_and_matches_diffusers(schedule):
    a = schedule.alphas_cumprod
    assert a.dtype == torch.float64 and a.shape == (1000,)
    # hand: β_0 = 0.0015, β_999 = 0.0195, β_1 = (√0.0015 + (√0.0195 − √0.0015)/999)²
    assert a[0].item() == pytest.approx(1 - 0.0015, rel=1e-14)
    b1 = (math.sqrt(0.0015) + (math.sqrt(0.0195) - math.sqrt(0.0015)) / 999) ** 2
    assert a[1].item() == pytest.approx((1 - 0.0015) * (1 - b1), rel=1e-14)
    betas = np.linspace(math.sqrt(0.0015), math.sqrt(0.0195), 1000) ** 2
    np.testing.assert_allclose(a.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    # diffusers computes the same in float32
    np.testing.assert_allclose(a.numpy(), audioldm_ddim().alphas_cumprod.double().numpy(), rtol=2e-5)


def test_alpha_sigma_snr_identities(schedule, gen):
    t = torch.randint(0, 1000, (64,), generator=gen)
    alpha, sigma = schedule.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(64, dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(schedule.snr(t), alpha**2 / sigma**2, rtol=1e-12, atol=0)
    assert schedule.snr(torch.tensor(0)).item() == pytest.approx(0.9985 / 0.0015, rel=1e-12)
    snr = schedule.snr(torch.arange(1000))
    assert bool((snr[1:] < snr[:-1]).all()), "SNR must decrease with t"


def test_clean_sentinel(schedule):
    alpha, sigma = schedule.alpha_sigma(torch.tensor([CLEAN]))
    assert alpha.item() == 1.0 and sigma.item() == 0.0
    assert math.isinf(schedule.snr(torch.tensor(CLEAN)).item())


def test_alpha_sigma_rejects_bad_timesteps(schedule):
    with pytest.raises(ValueError, match="timesteps must lie"):
        schedule.alpha_sigma(torch.tensor([1000]))
    with pytest.raises(TypeError, match="integers"):
        schedule.alpha_sigma(torch.tensor([0.5]))


def test_compiled_lookup_checks_timesteps_on_the_device(schedule):
    """Under torch.compile the range check is an on-device assertion (no host synchronisation),
    still raised for a timestep out of range; valid timesteps give the eager values."""
    lookup = torch.compile(schedule.alpha_sigma, backend="aot_eager")
    t = torch.tensor([CLEAN, 0, 500, 999])
    for got, want in zip(lookup(t), schedule.alpha_sigma(t), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="timesteps must lie"):
        lookup(torch.tensor([1000, 3]))


@pytest.mark.parametrize("n", PLAN_STEPS + [256, 128, 64, 32, 16, 12, 8, 4, 2, 1])
def test_step_grid_matches_diffusers_trailing(n):
    ddim = audioldm_ddim()
    ddim.set_timesteps(n)
    grid = step_grid(n)
    assert grid.dtype == torch.int64 and grid.shape == (n,)
    assert grid[0].item() == 999, "every sampler starts from the noisiest timestep"
    assert bool((grid[1:] < grid[:-1]).all())
    assert grid.tolist() == ddim.timesteps.tolist()


@pytest.mark.parametrize("n", PLAN_STEPS + [128, 64, 32, 16, 8, 4, 2, 1, 3, 7, 125])
def test_step_grid_nesting(n):
    """step_grid(N) is every other point of step_grid(2N): what progressive distillation needs."""
    assert step_grid(n).tolist() == step_grid(2 * n)[::2].tolist()


def test_step_grid_hand_values():
    assert step_grid(4).tolist() == [999, 749, 499, 249]
    assert step_grid(25)[:3].tolist() == [999, 959, 919]
    with pytest.raises(ValueError):
        step_grid(0)


def test_midpoint_and_next_timestep():
    grid = step_grid(4)
    i = torch.tensor([0, 1, 3])
    assert teacher_midpoint(grid, i).tolist() == [874, 624, 124]
    assert next_timestep(grid, i).tolist() == [749, 499, CLEAN]
    assert step_pairs(step_grid(2)) == [(999, 499), (499, CLEAN)]


def test_power_spaced_grid_hand_values_and_low_noise_share():
    """distill.grid_power ρ: t_i = round(T·(i/N)^ρ) − 1, half to even, distinct, from T − 1.
    By hand for N = 4, ρ = 2: 1000·(1, 9/16, 1/4, 1/16) = 1000, 562.5, 250, 62.5 → 999, 561, 249, 61."""
    from bsa.diffusion import audioldm_schedule, sampling_grid

    assert step_grid(4, 1000, 2.0).tolist() == [999, 561, 249, 61]
    assert step_grid(200, 1000, 1.0).tolist() == step_grid(200).tolist()  # ρ = 1 is the trailing grid
    # ρ = 3 at 200 points: the cleanest ones would round together; they are pushed apart
    dense = step_grid(200, 1000, 3.0)
    assert dense[0] == 999 and dense[-12:].tolist() == list(range(11, -1, -1))
    assert bool((dense[1:] < dense[:-1]).all())
    # the students' grids are the thinned base grid, so nesting holds whatever the spacing
    assert (
        sampling_grid(4, 200, power=2.0).tolist()
        == step_grid(200, 1000, 2.0)[::2][::2][::2][::2][::2][::2].tolist()
    )
    # the point of it: more student steps at SNR > 1 on AudioLDM's schedule (6 of 25 trailing)
    snr = audioldm_schedule().snr
    assert int((snr(sampling_grid(25, 200)) > 1).sum()) == 6
    assert int((snr(sampling_grid(25, 200, power=2.0)) > 1).sum()) == 12
    with pytest.raises(ValueError, match="power must be positive"):
        step_grid(4, 1000, 0.0)
    with pytest.raises(ValueError, match="do not fit"):
        step_grid(200, 1000, 0.05)
