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

    @classmethod
    def of(cls, embedding: torch.Tensor) -> GaussianStats:
        """The statistics of one set of embeddings [N, D]."""
        stats = cls.empty(embedding.shape[1])
        stats.update(embedding)
        return stats

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
    """scipy's sqrtm as frechet-audio-distance calls it (``disp=False``: no console message for a
    singular product); scipy 1.16–1.17 deprecate ``disp`` (silenced here: nothing for a user to
    act on) and 1.18 removes it, and with it the (matrix, error) return."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The `disp` argument is deprecated", DeprecationWarning)
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


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    """Σ^{1/2} for a batch of PSD matrices [R, D, D] (``eigh``; negative rounding clamped to 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt().unsqueeze(-2)) @ v.transpose(-1, -2)


def _trace_sqrt_product(root: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Tr((Σ₁Σ₂)^{1/2}) for batches of PSD matrices [R, D, D], given ``root`` = Σ₂^{1/2}: the
    eigenvalues of Σ₁Σ₂ are those of the symmetric Σ₂^{1/2} Σ₁ Σ₂^{1/2}, so one ``eigvalsh``
    replaces the general ``sqrtm`` (and the root of a shared reference is taken once)."""
    return torch.linalg.eigvalsh(root @ s @ root).clamp_min(0).sqrt().sum(-1)


def _resampled_mean_cov(x: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """μ and the unbiased Σ of ``x`` [N, D] under each row of resampling counts [R, N]."""
    n = counts.sum(-1, keepdim=True)  # [R, 1]
    mu = counts @ x / n
    outer = torch.einsum("rn,nd,ne->rde", counts, x, x)
    cov = (outer - n.unsqueeze(-1) * mu.unsqueeze(-1) * mu.unsqueeze(-2)) / (n.unsqueeze(-1) - 1)
    return mu, cov


class HalfSampleReplicates:
    """Replicates of Fréchet distances to one ``reference`` set [N, D] on random half-samples of
    its clips: each replicate keeps one random half of the clips, without replacement, and a set
    ``x`` whose row i belongs to clip i (same caption, same noise) is measured on the same half
    (:meth:`distances`). For a mean, the spread of half-sample means equals the standard error at
    N exactly (McCarthy 1969, "half-sample replication"); the with-replacement bootstrap is no use
    for FAD, whose bias grows as duplicates shrink the effective sample (its replicates need not
    even cover the estimate). The reference's side — each half's mean, trace and covariance root —
    is computed once and serves every set measured against it (the evaluation scores a stage's
    students, and the teacher against itself, on one teacher reference), float64 on the
    reference's device; ``chunk`` replicates are decomposed at a time."""

    def __init__(self, reference: torch.Tensor, num_replicates: int = 200, seed: int = 0, chunk: int = 25):
        n = reference.shape[0]
        if n < 4:
            raise ValueError(f"need at least 4 clips for half-sample replicates, got {n}")
        g = torch.Generator().manual_seed(seed)
        keep = torch.stack([torch.randperm(n, generator=g)[: n // 2] for _ in range(num_replicates)])
        self.n, self.device = n, reference.device
        reference = reference.to(torch.float64)
        self._chunks = []
        for start in range(0, num_replicates, chunk):
            rows = keep[start : start + chunk]
            counts = torch.zeros(rows.shape[0], n, dtype=torch.float64).scatter_(1, rows, 1.0).to(self.device)
            mu, cov = _resampled_mean_cov(reference, counts)
            self._chunks.append((counts, mu, cov.diagonal(0, -2, -1).sum(-1), _psd_sqrt(cov)))

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """[R] Fréchet distances between ``x`` [N, D] and the reference, replicate by replicate on
        the same half of the clips (returned on the CPU)."""
        if x.shape[0] != self.n:
            raise ValueError(f"{x.shape[0]} clips against a reference of {self.n}: the sets must be paired")
        x = x.to(self.device, torch.float64)
        out = []
        for counts, mu_ref, trace_ref, root in self._chunks:
            mu, cov = _resampled_mean_cov(x, counts)
            d = (mu - mu_ref).pow(2).sum(-1) + cov.diagonal(0, -2, -1).sum(-1) + trace_ref
            out.append((d - 2 * _trace_sqrt_product(root, cov)).cpu())
        return torch.cat(out)


def paired_frechet_half_samples(
    sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    num_replicates: int = 200,
    seed: int = 0,
    chunk: int = 25,
) -> dict[str, torch.Tensor]:
    """Replicates of Fréchet distances between paired embedding sets on random half-samples
    (:class:`HalfSampleReplicates`): ``sets`` maps a name to (a [N, D], b [N, D]) whose row i
    belongs to clip i in both; every pair is measured on the same halves (so ratios of two
    distances replicate as pairs too), each distinct ``b`` prepared once. Returns name → [R]."""
    references: dict[int, HalfSampleReplicates] = {}
    out = {}
    for name, (a, b) in sets.items():
        if id(b) not in references:
            references[id(b)] = HalfSampleReplicates(b, num_replicates, seed, chunk)
        out[name] = references[id(b)].distances(a)
    return out


def normal_quantile(level: float = 0.95) -> float:
    """z of a two-sided normal interval at ``level`` (1.96 at 95 %)."""
    return float(
        torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.5 + level / 2, dtype=torch.float64))
    )


def normal_interval(estimate: float, standard_error: float, level: float = 0.95) -> tuple[float, float]:
    """estimate ± z·SE, z the normal quantile of ``level`` (:func:`normal_quantile`)."""
    z = normal_quantile(level)
    return estimate - z * standard_error, estimate + z * standard_error


def embedding_frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between two sets of embeddings [N, D] (as the evaluation computes it)."""
    return frechet_from_stats(GaussianStats.of(a), GaussianStats.of(b))


class PairedFrechetDifferences:
    """FD(a, reference) − FD(b, reference) and its standard error (:func:`paired_frechet_difference`)
    for many sets ``a`` against one ``b``: the reference's half-sample replicates (``replicates``,
    built once for every ``b`` compared against that reference) and ``b``'s side are computed once,
    each ``a`` costs its own distances alone — the same numbers as one call per pair."""

    def __init__(self, b: torch.Tensor, reference: torch.Tensor, replicates: HalfSampleReplicates) -> None:
        self.reference, self.replicates = reference, replicates
        self.b_distance = embedding_frechet(b, reference)
        self.b_replicates = replicates.distances(b)

    def difference(self, a: torch.Tensor) -> tuple[float, float]:
        return embedding_frechet(a, self.reference) - self.b_distance, float(
            (self.replicates.distances(a) - self.b_replicates).std()
        )


def paired_frechet_difference(
    a: torch.Tensor, b: torch.Tensor, reference: torch.Tensor, seed: int = 0, num_replicates: int = 200
) -> tuple[float, float]:
    """FD(a, reference) − FD(b, reference) and its standard error, for two models scored on the
    same clips (row i: the same caption and noise in all three sets): the half-sample replicates
    of :class:`HalfSampleReplicates` keep the same clips for both distances, so the error common
    to both (which clips happened to be drawn) cancels in the difference — much as a paired
    per-clip difference has a smaller interval than either mean."""
    replicates = HalfSampleReplicates(reference, num_replicates, seed)
    return PairedFrechetDifferences(b, reference, replicates).difference(a)
