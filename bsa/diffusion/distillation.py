"""Progressive distillation target (Salimans & Ho 2022, Algorithm 2; SPEC §3)."""

from __future__ import annotations

import torch

from .guidance import Denoise
from .parameterization import broadcast_like
from .schedules import NoiseSchedule
from .solvers import ddim_step


def target_from_two_steps(
    z_t: torch.Tensor, z_s: torch.Tensor, t: torch.Tensor, s: torch.Tensor, schedule: NoiseSchedule
) -> torch.Tensor:
    """x̃ such that one DDIM step t → s from z_t with x̂ = x̃ lands on z_s (Salimans & Ho 2022, Alg. 2):

        x̃ = (z_s − (σ_s/σ_t) z_t) / (α_s − (σ_s/σ_t) α_t)

    At s = CLEAN (α_s = 1, σ_s = 0) this reduces exactly to x̃ = z_s: no special case is needed.
    """
    alpha_t, sigma_t = schedule.alpha_sigma(torch.as_tensor(t, device=z_t.device))
    alpha_s, sigma_s = schedule.alpha_sigma(torch.as_tensor(s, device=z_t.device))
    ratio = sigma_s / sigma_t
    return (z_s - broadcast_like(ratio, z_t) * z_t) / broadcast_like(alpha_s - ratio * alpha_t, z_t)


@torch.no_grad()
def distillation_target(
    denoise: Denoise,
    z_t: torch.Tensor,
    t: torch.Tensor,
    t_mid: torch.Tensor,
    s: torch.Tensor,
    schedule: NoiseSchedule,
) -> torch.Tensor:
    """The student's x-space target x̃ for its single step t → s (SPEC §3).

    Two teacher DDIM steps t → t' → t'' (``t_mid`` = t', ``s`` = t''), with x̂_θ = ``denoise``:
        z_t'  = α_t' x̂_θ(z_t)  + (σ_t'/σ_t)(z_t − α_t x̂_θ(z_t))
        z_t'' = α_t'' x̂_θ(z_t') + (σ_t''/σ_t')(z_t' − α_t' x̂_θ(z_t'))
    and x̃ from :func:`target_from_two_steps`. For the last step (s = CLEAN) z_t'' = x̂_θ(z_t'),
    the teacher's own final output, exactly as the reference (``jnp.where(i == 0, x_pred, …)``).
    ``t``, ``t_mid``, ``s``: LongTensor [B]; ``z_t``: [B, ...]. ``denoise`` is the teacher with its
    guidance applied (CFG wrapper or w-conditioned model).
    """
    z_mid = ddim_step(z_t, denoise(z_t, t), t, t_mid, schedule)
    z_s = ddim_step(z_mid, denoise(z_mid, t_mid), t_mid, s, schedule)
    return target_from_two_steps(z_t, z_s, t, s, schedule)
