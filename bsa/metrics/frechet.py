"""Fréchet distance between Gaussians fitted to embeddings (FAD: Kilgour et al. 2019; FID: Heusel
et al. 2017, eq. 6):  d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2}).

Statistics are accumulated as sufficient statistics (count, Σx, Σxxᵀ in float64), which add
across batches and across DDP ranks (``all_reduce`` with SUM), so no rank needs all embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class GaussianStats:
    count: torch.Tensor  # [] float64
    total: torch.Tensor  # [D]
    outer: torch.Tensor  # [D, D]

    @classmethod
    def empty(cls, dim: int) -> GaussianStats:
        z = torch.zeros
        return cls(z((), dtype=torch.float64), z(dim, dtype=torch.float64), z(dim, dim, dtype=torch.float64))

    def update(self, emb: torch.Tensor) -> None:
        e = emb.detach().to(torch.float64).cpu()
        self.count += e.shape[0]
        self.total += e.sum(0)
        self.outer += e.T @ e

    def all_reduce(self) -> None:
        """Sum the statistics over DDP ranks (no-op without torch.distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            backend_device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
            for t in (self.count, self.total, self.outer):
                buf = t.to(backend_device)
                torch.distributed.all_reduce(buf)
                t.copy_(buf.cpu())

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """μ and the unbiased covariance (numpy's ``np.cov(rowvar=False)``, as frechet-audio-distance)."""
        n = float(self.count)
        if n < 2:
            raise ValueError(f"need at least 2 embeddings for a covariance, got {int(n)}")
        mu = self.total / n
        cov = (self.outer - n * torch.outer(mu, mu)) / (n - 1)
        return mu.numpy(), cov.numpy()


def _sqrtm(linalg, m: np.ndarray) -> np.ndarray:
    """scipy's sqrtm; newer scipy removed ``disp`` (and with it the (matrix, error) return)."""
    try:
        root = linalg.sqrtm(m, disp=False)[0]
    except TypeError:
        root = linalg.sqrtm(m)
    return np.atleast_2d(root)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """d² between N(μ₁, Σ₁) and N(μ₂, Σ₂); the same arithmetic as frechet-audio-distance's
    ``calculate_frechet_distance`` (scipy ``sqrtm``, an εI offset when the product is singular)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shapes differ: μ {mu1.shape} vs {mu2.shape}, Σ {sigma1.shape} vs {sigma2.shape}")
    if np.array_equal(mu1, mu2) and np.array_equal(sigma1, sigma2):
        # d² = 0 exactly; sqrtm of a rank-deficient Σ² (fewer clips than dimensions) would return
        # rounding noise instead, of either sign (−0.01 for 4 clips of a 256-d embedding)
        return 0.0
    diff = mu1 - mu2
    covmean = _sqrtm(linalg, sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm(linalg, (sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the matrix square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    return frechet_distance(*a.mean_cov(), *b.mean_cov())
