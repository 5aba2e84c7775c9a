"""Conversions between the ε, v and x̂ parameterisations of a denoiser (SPEC §2).

With z_t = α_t x + σ_t ε (α² + σ² = 1), and following Salimans & Ho (2022, §4 and App. D):
    x̂ = (z_t − σ_t ε̂) / α_t          ε̂ = (z_t − α_t x̂) / σ_t
    v  = α_t ε − σ_t x                x̂ = α_t z_t − σ_t v̂,   ε̂ = σ_t z_t + α_t v̂
``alpha`` and ``sigma`` broadcast against ``z`` from the left (shape [B] for a batch [B, ...]).
"""

from __future__ import annotations

import torch

PARAMETERIZATIONS = ("epsilon", "v_prediction", "sample")


def broadcast_like(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-example coefficient [B] (or scalar) to broadcast over ``x`` [B, ...], in x's dtype.
    A population's latents [K, B, C, T', F'] (K students' outputs for one batch,
    ``bsa.lit.population``) take the same [B] coefficient per example, aligned with B."""
    coef = torch.as_tensor(coef, device=x.device).to(x.dtype)
    if coef.ndim == 0:
        return coef
    pad = x.ndim - coef.ndim - (1 if x.ndim == 5 and coef.ndim == 1 else 0)
    return coef.reshape(coef.shape + (1,) * pad)


def x_from_eps(z: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x̂ = (z − σ ε̂) / α."""
    return (z - broadcast_like(sigma, z) * eps) / broadcast_like(alpha, z)


def eps_from_x(z: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ε̂ = (z − α x̂) / σ  (undefined at σ = 0, the clean end)."""
    return (z - broadcast_like(alpha, z) * x) / broadcast_like(sigma, z)


def v_from_x_eps(
    x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """v = α ε − σ x  (Salimans & Ho 2022, eq. in §4)."""
    return broadcast_like(alpha, x) * eps - broadcast_like(sigma, x) * x


def x_from_v(z: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x̂ = α z − σ v̂."""
    return broadcast_like(alpha, z) * z - broadcast_like(sigma, z) * v


def eps_from_v(z: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ε̂ = σ z + α v̂."""
    return broadcast_like(sigma, z) * z + broadcast_like(alpha, z) * v


def x_from_prediction(
    prediction: torch.Tensor, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, parameterization: str
) -> torch.Tensor:
    """x̂ from a network output in its own parameterisation (diffusers' ``prediction_type`` names)."""
    if parameterization == "epsilon":
        return x_from_eps(z, prediction, alpha, sigma)
    if parameterization == "v_prediction":
        return x_from_v(z, prediction, alpha, sigma)
    if parameterization == "sample":
        return prediction
    raise ValueError(f"unknown parameterization {parameterization!r}; expected one of {PARAMETERIZATIONS}")


def prediction_from_x(
    x: torch.Tensor, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, parameterization: str
) -> torch.Tensor:
    """The inverse of :func:`x_from_prediction`: the network target that corresponds to x̂."""
    if parameterization == "epsilon":
        return eps_from_x(z, x, alpha, sigma)
    if parameterization == "v_prediction":
        return v_from_x_eps(x, eps_from_x(z, x, alpha, sigma), alpha, sigma)
    if parameterization == "sample":
        return x
    raise ValueError(f"unknown parameterization {parameterization!r}; expected one of {PARAMETERIZATIONS}")
