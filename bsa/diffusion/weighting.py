"""Loss weightings over noise levels: one registry, each a function of SNR → x-space weight (SPEC §5).

The distillation loss is w(SNR_t) · ‖x̃ − x̂_η(z_t)‖². ε-MSE = SNR · x-MSE and v-MSE = (SNR + 1) ·
x-MSE, so each scheme is written once, as a weight on the x-space MSE. Every function takes a
tensor of SNR values (any shape, SNR ≥ 0, +∞ allowed) and returns the weight, same shape and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

Weighting = Callable[[torch.Tensor], torch.Tensor]


def constant_weight(snr: torch.Tensor) -> torch.Tensor:
    """w = 1: plain x-space MSE (Salimans & Ho 2022, §4 "x-prediction, constant weighting")."""
    return torch.ones_like(snr)


def snr_weight(snr: torch.Tensor) -> torch.Tensor:
    """w = SNR: equivalent to the ε-MSE of DDPM (Ho et al. 2020; Salimans & Ho 2022, eq. 7)."""
    return snr.clone()


def truncated_snr_weight(snr: torch.Tensor) -> torch.Tensor:
    """w = max(SNR, 1): "truncated SNR" weighting (Salimans & Ho 2022, §4, eq. 9)."""
    return torch.clamp(snr, min=1.0)


def snr_plus_one_weight(snr: torch.Tensor) -> torch.Tensor:
    """w = SNR + 1: "SNR+1" weighting, equal to the v-MSE (Salimans & Ho 2022, §4, eq. 10)."""
    return snr + 1.0


def min_snr_weight(snr: torch.Tensor, gamma: float = 5.0) -> torch.Tensor:
    """w = min(SNR, γ), γ = 5 (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
    Weighting Strategy", eq. 7, in x-space). Vanishes as SNR → 0."""
    return torch.clamp(snr, max=gamma)


def bsa_weight(snr: torch.Tensor, floor: float = 1.0, gamma: float = 5.0) -> torch.Tensor:
    """Balanced SNR-Aware weight: w = clip(SNR, floor, γ) = min(max(SNR, floor), γ) (SPEC §5.1).

    This is the project's reading of the BSA paper's description — earlier weightings are
    "unbalanced at both high and low noise levels", BSA "weights the loss in a balanced way for
    both" — as the floor of truncated-SNR at high noise (SNR → 0: w → floor, not 0 as Min-SNR)
    combined with the cap of Min-SNR at low noise (SNR → ∞: w → γ, not ∞ as truncated-SNR and
    SNR+1). Defaults floor = 1, γ = 5: the paper's reading, what the name ``bsa`` alone means in
    comparisons and records (the weighting study's reference). The package's runs default to
    (0.1, 20) instead (config ``distill.bsa_floor`` / ``distill.bsa_gamma``), the point the study
    found best (docs/results/weighting-study.md "The (floor, γ) map through the vocoder, seeds 1–4…"); their records name it.

    The family nests the baselines (issue "A weighting study that can tell weightings apart"):
    floor = 0 is Min-SNR-γ, γ = ∞ is truncated SNR (floor = 1), floor = γ = 1 is constant.
    """
    _check_family("bsa_weight", floor, gamma)
    return torch.clamp(snr, min=floor, max=gamma)


def _check_family(name: str, floor: float, gamma: float) -> None:
    if not (0.0 <= floor <= gamma and gamma > 0.0):
        raise ValueError(
            f"{name} needs 0 <= floor <= gamma, gamma > 0 (∞ allowed), got floor={floor}, gamma={gamma}"
        )


def smooth_bsa_weight(snr: torch.Tensor, floor: float = 1.0, gamma: float = 5.0) -> torch.Tensor:
    """Smooth BSA variant: w = max(SNR·γ / (SNR + γ), floor) — the harmonic blend of SNR and γ
    (a soft Min-SNR cap, → γ as SNR → ∞), floored at ``floor`` at high noise (SPEC §5.1 addendum)."""
    _check_family("smooth_bsa_weight", floor, gamma)
    if gamma == float("inf"):  # no cap: the harmonic blend is SNR itself
        return torch.clamp(snr, min=floor)
    soft = torch.where(torch.isinf(snr), torch.full_like(snr, gamma), snr * gamma / (snr + gamma))
    return torch.clamp(soft, min=floor)


WEIGHTINGS: dict[str, Weighting] = {
    "constant": constant_weight,
    "snr": snr_weight,
    "truncated_snr": truncated_snr_weight,
    "snr_plus_one": snr_plus_one_weight,
    "min_snr": min_snr_weight,
    "bsa": bsa_weight,
    "smooth_bsa": smooth_bsa_weight,
}
"""Registry name → w(SNR), x-space. ``min_snr``/``bsa``/``smooth_bsa`` use their default γ/floor."""

_HYPERPARAMETERS = {"min_snr": ("gamma",), "bsa": ("floor", "gamma"), "smooth_bsa": ("floor", "gamma")}


def weighting_defaults(name: str) -> dict[str, float]:
    """The hyper-parameters ``name`` takes, at its function's defaults: what the name alone means
    (``bsa`` → floor 1, γ 5; ``min_snr`` → γ 5)."""
    import inspect

    parameters = inspect.signature(WEIGHTINGS[name]).parameters
    return {k: parameters[k].default for k in _HYPERPARAMETERS.get(name, ())}


def family_point(name: str, **hyperparameters: float) -> tuple[float, float] | None:
    """Where a weighting sits on the BSA family's (floor, γ) map, w = clip(SNR, floor, γ), or None
    outside it (SNR+1, smooth BSA): ``bsa`` at its (floor, γ), Min-SNR-γ at (0, γ), truncated SNR
    at (1, ∞), constant at (1, 1), the ε-MSE weight SNR at (0, ∞). Unset hyper-parameters take
    the functions' defaults (:func:`weighting_defaults`)."""
    if name in ("bsa", "min_snr"):
        h = weighting_defaults(name) | hyperparameters
        return (h["floor"] if name == "bsa" else 0.0, h["gamma"])
    return {"truncated_snr": (1.0, math.inf), "constant": (1.0, 1.0), "snr": (0.0, math.inf)}.get(name)


def get_weighting(name: str, **hyperparameters: float) -> Weighting:
    """Look up ``name`` in :data:`WEIGHTINGS` and bind the hyper-parameters it takes (others ignored)."""
    try:
        fn = WEIGHTINGS[name]
    except KeyError:
        raise ValueError(f"unknown weighting {name!r}; expected one of {sorted(WEIGHTINGS)}") from None
    accepted = {k: v for k, v in hyperparameters.items() if k in _HYPERPARAMETERS.get(name, ())}
    return partial(fn, **accepted) if accepted else fn


def x_space_factor(snr: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """How much larger a parameterisation's MSE is than the x-space MSE at the same error (SPEC §5):
    ε-MSE = SNR · x-MSE, v-MSE = (SNR + 1) · x-MSE, x-MSE = 1 · x-MSE. A loss on that
    parameterisation with x-space weight w is therefore w / factor · its MSE."""
    if prediction_type == "epsilon":
        return snr
    if prediction_type == "v_prediction":
        return snr + 1
    if prediction_type == "sample":
        return torch.ones_like(snr)
    raise ValueError(f"unknown prediction_type {prediction_type!r}; expected epsilon, v_prediction or sample")
