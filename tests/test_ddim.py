import pytest
import torch
from _helpers import audioldm_ddim

from bsa.diffusion import CLEAN, ddim_step, eps_from_x, step_grid, x_from_eps


@pytest.mark.parametrize("n", [200, 25, 4])
def test_ddim_step_matches_diffusers(schedule, gen, n):
    """Our η=0 DDIM step equals DDIMScheduler.step (AudioLDM config) on the same z_t and ε̂."""
    ddim = audioldm_ddim()
    ddim.alphas_cumprod = schedule.alphas_cumprod.clone()  # same float64 table: compare the update rule
    ddim.set_timesteps(n)
    grid = step_grid(n)
    for k in range(n - 1):  # intermediate steps; diffusers' last step stops at ᾱ_0, ours at CLEAN
        t, s = int(grid[k]), int(grid[k + 1])
        z = torch.randn(2, 8, 6, 4, dtype=torch.float64, generator=gen)
        eps = torch.randn(z.shape, dtype=torch.float64, generator=gen)
        expected = ddim.step(eps, t, z, eta=0.0).prev_sample
        alpha_t, sigma_t = schedule.alpha_sigma(torch.tensor(t))
        x_hat = x_from_eps(z, eps, alpha_t, sigma_t)
        torch.testing.assert_close(ddim_step(z, x_hat, t, s, schedule), expected, rtol=1e-10, atol=1e-10)


def test_last_step_matches_diffusers_with_alpha_one(schedule, gen):
    ddim = audioldm_ddim(set_alpha_to_one=True)
    ddim.alphas_cumprod = schedule.alphas_cumprod.clone()
    ddim.set_timesteps(4)
    z = torch.randn(3, 8, 6, 4, dtype=torch.float64, generator=gen)
    eps = torch.randn(z.shape, dtype=torch.float64, generator=gen)
    expected = ddim.step(eps, 249, z, eta=0.0).prev_sample
    alpha_t, sigma_t = schedule.alpha_sigma(torch.tensor(249))
    x_hat = x_from_eps(z, eps, alpha_t, sigma_t)
    out = ddim_step(z, x_hat, 249, CLEAN, schedule)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out, x_hat, rtol=0, atol=0)


def test_ddim_step_preserves_implied_noise(schedule, gen):
    """η = 0: z_s = α_s x̂ + σ_s ε̂ with the same ε̂ that z_t implies (per-example t and s)."""
    t = torch.tensor([999, 500, 20])
    s = torch.tensor([874, 10, CLEAN])
    z = torch.randn(3, 4, 5, dtype=torch.float64, generator=gen)
    x_hat = torch.randn(3, 4, 5, dtype=torch.float64, generator=gen)
    a_t, s_t = schedule.alpha_sigma(t)
    eps_hat = eps_from_x(z, x_hat, a_t, s_t)
    a_s, s_s = schedule.alpha_sigma(s)
    expected = a_s.view(-1, 1, 1) * x_hat + s_s.view(-1, 1, 1) * eps_hat
    torch.testing.assert_close(ddim_step(z, x_hat, t, s, schedule), expected, rtol=1e-10, atol=1e-10)
