"""Classifier-free guidance as a wrapper around a denoiser (Ho & Salimans 2022).

Convention: AudioLDM's / diffusers' ``guidance_scale`` s,

    x̂_s = x̂_∅ + s (x̂_c − x̂_∅),

so s = 1 is the plain conditional model. Meng et al. (2023) write (1 + w) x̂_c − w x̂_∅: w = s − 1.
Guidance is linear in the prediction, so it is the same in x̂, ε̂ and v̂ space at a fixed z_t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""denoise(z_t [B, ...], t [B] int64) → x̂ [B, ...]: the one calling convention for a denoiser."""

CondDenoise = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
"""denoise(z_t, t, cond) → x̂, cond a batched tensor (e.g. text embeddings [B, D])."""


def guided_prediction(
    x_cond: torch.Tensor, x_uncond: torch.Tensor, scale: float | torch.Tensor
) -> torch.Tensor:
    """x̂_s = x̂_∅ + s (x̂_c − x̂_∅); ``scale`` a float or a per-example tensor [B]."""
    if isinstance(scale, torch.Tensor) and scale.ndim > 0:
        scale = scale.reshape(scale.shape + (1,) * (x_cond.ndim - 1)).to(x_cond.dtype)
    return x_uncond + scale * (x_cond - x_uncond)


def classifier_free_guidance(
    denoise: CondDenoise, cond: torch.Tensor, null_cond: torch.Tensor, scale: float | torch.Tensor
) -> Denoise:
    """Wrap a conditional denoiser into ``denoise(z, t)`` applying CFG with one batched call.

    ``cond``: [B, ...]; ``null_cond``: [B, ...] or [...] (broadcast to the batch). Conditional and
    unconditional halves run as one batch of 2B, as AudioLDM's pipeline does.
    """
    null = null_cond.expand_as(cond) if null_cond.shape != cond.shape else null_cond

    def guided(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if isinstance(scale, (int, float)) and scale == 1.0:
            return denoise(z, t, cond)
        both = denoise(torch.cat([z, z]), torch.cat([t, t]), torch.cat([cond, null]))
        x_cond, x_uncond = both.chunk(2)
        return guided_prediction(x_cond, x_uncond, scale)

    return guided


def guidance_active(t: torch.Tensor | int, interval: tuple[int, int] | None) -> torch.Tensor | bool:
    """Whether guidance applies at timestep ``t`` (an int, or a tensor of them): everywhere without
    ``interval``, else only where t_lo ≤ t ≤ t_hi — guidance in a limited interval (Kynkäänniemi et
    al. 2024, "Applying guidance in a limited interval improves sample and distribution quality in
    diffusion models", §3: off at the highest noise levels, where it costs diversity, and at the
    lowest, where it does nothing). Outside the interval the scale is 1: the conditional model."""
    if interval is None:
        return torch.ones_like(t, dtype=torch.bool) if isinstance(t, torch.Tensor) else True
    lo, hi = interval
    return (t >= lo) & (t <= hi)


def network_calls(
    steps: int, w_conditioned: bool, guidance_scale: float, guided_steps: int | None = None
) -> int:
    """NFE of an N-step sampler: one network evaluation per step for a w-conditioned denoiser or
    without guidance (scale 1: :func:`classifier_free_guidance` calls the conditional model only),
    two with classifier-free guidance (the conditional and the unconditional half) — in the
    ``guided_steps`` of the N where guidance applies (:func:`guidance_active`; default all N)."""
    if w_conditioned or guidance_scale == 1.0:
        return steps
    return steps + (steps if guided_steps is None else guided_steps)
