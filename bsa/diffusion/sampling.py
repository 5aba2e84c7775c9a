"""The one sampling loop of the code base: teacher, students, evaluation and export all use it."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .guidance import CondDenoise, Denoise, classifier_free_guidance, guidance_active
from .schedules import NoiseSchedule, step_pairs
from .solvers import SOLVERS


@torch.no_grad()
def sample(
    denoise: Denoise,
    noise: torch.Tensor,
    grid: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    cond: torch.Tensor | None = None,
    null_cond: torch.Tensor | None = None,
    guidance_scale: float | torch.Tensor = 1.0,
    solver: str = "ddim",
    callback: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None,
    guidance_interval: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Run the deterministic sampler from ``noise`` (= z at t = grid[0]) down to clean data.

    ``denoise(z, t)`` returns x̂. With ``cond`` given, ``denoise`` is conditional,
    ``denoise(z, t, cond)``, and a ``guidance_scale`` ≠ 1 with ``null_cond`` applies classifier-free
    guidance (two network calls per step, batched). A guidance-distilled (w-conditioned) student is
    passed as a plain ``denoise(z, t)`` with its w bound, one call per step. ``grid``: descending timesteps from :func:`step_grid` — the number of network
    evaluations per sample is ``len(grid)`` (×2 under CFG). ``callback(i, t, z_t, x_hat)`` is
    called after each step. ``guidance_interval`` (t_lo, t_hi): classifier-free guidance only at
    the steps whose t lies in it, the conditional model alone (one call) at the others
    (:func:`guidance_active`). Returns x̂ at t = CLEAN, shape of ``noise``.

    z at t = T−1 has α ≈ 0.07 for AudioLDM's schedule, so ``noise`` is N(0, I) as in AudioLDM.
    """
    try:
        step = SOLVERS[solver]
    except KeyError:
        raise ValueError(f"unknown solver {solver!r}; expected one of {sorted(SOLVERS)}") from None
    guided = None
    if cond is not None:
        cond_denoise: CondDenoise = denoise
        denoise = lambda z_, t_: cond_denoise(z_, t_, cond)  # noqa: E731
        if guidance_scale is not None and not (
            isinstance(guidance_scale, (int, float)) and guidance_scale == 1.0
        ):
            if null_cond is None:
                raise ValueError("guidance_scale != 1 needs null_cond (the empty-caption embedding)")
            guided = classifier_free_guidance(cond_denoise, cond, null_cond, guidance_scale)
    z = noise
    batch = noise.shape[0]
    for i, (t, s) in enumerate(step_pairs(grid)):
        t_vec = torch.full((batch,), t, dtype=torch.long, device=z.device)
        x_hat = (guided if guided is not None and guidance_active(t, guidance_interval) else denoise)(
            z, t_vec
        )
        z = step(z, x_hat, t, s, schedule)
        if callback is not None:
            callback(i, t, z, x_hat)
    return z
