"""Single-step updates of the probability-flow sampler, as pure functions."""

from __future__ import annotations

import torch

from .parameterization import broadcast_like
from .schedules import NoiseSchedule


def ddim_step(
    z_t: torch.Tensor, x_hat: torch.Tensor, t: torch.Tensor, s: torch.Tensor, schedule: NoiseSchedule
) -> torch.Tensor:
    """Deterministic DDIM step (η = 0) from t to s < t (Song et al. 2021, eq. 12; SPEC §2):

        z_s = α_s x̂ + (σ_s / σ_t)(z_t − α_t x̂)

    ``z_t``, ``x_hat``: [B, ...]; ``t``, ``s``: integer timesteps, scalar or [B]; ``s = CLEAN`` (−1)
    gives z_s = x̂ exactly. Computed in the dtype of ``z_t``.
    """
    # Python timesteps are filled on the device (a kernel; a host copy could not be graph-captured)
    t, s = (
        u.to(z_t.device) if torch.is_tensor(u) else torch.full((), u, dtype=torch.long, device=z_t.device)
        for u in (t, s)
    )
    alpha_t, sigma_t = schedule.alpha_sigma(t)
    alpha_s, sigma_s = schedule.alpha_sigma(s)
    a_t, a_s = broadcast_like(alpha_t, z_t), broadcast_like(alpha_s, z_t)
    ratio = broadcast_like(sigma_s / sigma_t, z_t)
    return a_s * x_hat + ratio * (z_t - a_t * x_hat)


SOLVERS = {"ddim": ddim_step}
"""Registry of single-step solvers: name → f(z_t, x_hat, t, s, schedule) → z_s."""
