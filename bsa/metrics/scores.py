"""Inception Score, CLAP score and attribute accuracy from model outputs."""

from __future__ import annotations

import torch


def inception_score(probs: torch.Tensor, eps: float = 1e-12) -> float:
    """IS = exp(E_x KL(p(y|x) ‖ p(y))) (Salimans et al. 2016, §4), p(y) the batch marginal.
    probs [N, K] rows summing to 1. 1 for identical predictions, K for confident and uniform."""
    probs = probs.double()
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * ((probs + eps).log() - (marginal + eps).log())).sum(1)
    return float(kl.mean().exp())


def row_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the rows of a and b [N, J] → [N], in float64."""
    a = torch.nn.functional.normalize(a.double(), dim=-1)
    b = torch.nn.functional.normalize(b.double(), dim=-1)
    return (a * b).sum(-1)


def clap_score(audio_joint: torch.Tensor, text_joint: torch.Tensor) -> float:
    """Mean cosine similarity of paired audio and caption embeddings [N, J] (CLAP score,
    e.g. Huang et al. 2023, Make-An-Audio)."""
    return float(row_cosine(audio_joint, text_joint).mean())


def attribute_accuracy(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per attribute, the fraction of clips whose predicted class equals the caption's."""
    return {k: float((logits[k].argmax(-1) == targets[k]).double().mean()) for k in targets}


def clip_noise_floor_db(waves: torch.Tensor, frame: int = 400, quantile: float = 0.1) -> torch.Tensor:
    """Per clip [N, L] → [N]: the ``quantile`` of its frame RMS levels (non-overlapping
    ``frame``-sample frames, 25 ms at 16 kHz) in dB relative to full scale (20·log10 RMS, a
    full-scale square wave = 0 dBFS), float64. On clips whose caption asks for silence around a
    sound it measures what a vocoder leaves in the silent passages (hiss)."""
    n = waves.shape[-1] // frame
    frames = waves[..., : n * frame].double().reshape(waves.shape[0], n, frame)
    level = 20 * frames.pow(2).mean(-1).sqrt().clamp(min=1e-10).log10()
    return level.quantile(quantile, dim=1)


def clip_levels(waves: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per clip [N, L] → [N] each, in dBFS (float64): ``level_db``, the RMS level of the whole clip
    (how loud it is), and ``noise_floor_db`` (:func:`clip_noise_floor_db`, how quiet its quietest
    passages are) — what a record keeps of each clip's loudness."""
    rms = waves.double().pow(2).mean(-1).sqrt().clamp(min=1e-10)
    return {"level_db": 20 * rms.log10(), "noise_floor_db": clip_noise_floor_db(waves)}


SILENCE_CAPTION = "in silence"  # the embedded set's captions of a sound with silence around it


def silence_floor(floors_db: torch.Tensor, captions: list[str]) -> dict[str, float]:
    """``silence_floor_dbfs``: the median noise floor (per-clip :func:`clip_noise_floor_db`) of the
    clips whose caption asks for silence around the sound; {} when no caption does (AudioCaps)."""
    quiet = [i for i, c in enumerate(captions) if SILENCE_CAPTION in c]
    return {"silence_floor_dbfs": float(floors_db[quiet].median())} if quiet else {}
