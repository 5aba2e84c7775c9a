"""Paired fidelity metrics: a model's output against the teacher's for the same caption, the same
initial noise and the same guidance — per clip, then a mean with a 95 % bootstrap interval over
clips. Paired differences resolve far smaller changes than distribution distances (FAD) at a
few hundred clips, because the caption- and noise-to-noise variation cancels."""

from __future__ import annotations

import torch

from bsa.metrics.embedded import AudioFeatures
from bsa.metrics.scores import row_cosine


def bootstrap_mean_ci(
    values: torch.Tensor, num_resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of ``values`` [N] and its percentile bootstrap interval over the
    N clips (Efron & Tibshirani 1993, §13.3), resamples drawn from a fixed seed (reproducible)."""
    v = values.double().flatten()
    if v.numel() == 0:
        raise ValueError("no values to bootstrap")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, v.numel(), (num_resamples, v.numel()), generator=g)
    means = v[idx].mean(1)
    alpha = (1 - level) / 2
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    return float(v.mean()), lo, hi


def two_level_bootstrap_ci(
    values: torch.Tensor, num_resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, lo, hi) of ``values`` [S seeds, N captions] — e.g. per-clip differences between two
    weightings run on the same seeds, captions and noise — with a percentile bootstrap interval
    that resamples seeds and captions (Davison & Hinkley 1997, §3.8: a two-stage bootstrap for
    crossed factors; the captions are the same for every seed, so one caption draw serves all
    the drawn seeds). With one seed this is :func:`bootstrap_mean_ci` over captions."""
    v = values.double()
    if v.dim() != 2 or v.numel() == 0:
        raise ValueError(f"expected a non-empty [seeds, captions] table, got shape {tuple(v.shape)}")
    s, n = v.shape
    g = torch.Generator().manual_seed(seed)
    seeds = torch.randint(0, s, (num_resamples, s), generator=g)
    captions = torch.randint(0, n, (num_resamples, n), generator=g)
    means = torch.stack([v[seeds[r]][:, captions[r]].mean() for r in range(num_resamples)])
    alpha = (1 - level) / 2
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    return float(v.mean()), lo, hi


def per_clip_scores(
    features: AudioFeatures, text_joint: torch.Tensor, targets: dict | None
) -> dict[str, torch.Tensor]:
    """Each clip's CLAP score and (with targets) its correctness per classifier head (``acc_<head>``,
    0 or 1) and their mean over the heads: their means are the set's ``clap``, ``acc_<head>`` and
    ``acc_mean``; kept per clip so that two models scored on the same captions and noise can be
    compared clip by clip."""
    out = {"clap": row_cosine(features.audio_joint, text_joint)}
    if targets:
        correct = {k: (features.logits[k].argmax(-1) == targets[k]).double() for k in sorted(targets)}
        out["acc_mean"] = torch.stack(list(correct.values())).mean(0)
        out.update({f"acc_{k}": v for k, v in correct.items()})
    return out


def paired_per_clip(
    latents: torch.Tensor,
    teacher_latents: torch.Tensor,
    mels: torch.Tensor,
    teacher_mels: torch.Tensor,
    features: AudioFeatures,
    teacher_features: AudioFeatures,
    text_joint: torch.Tensor,
    targets: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per clip [N] each:
    * ``latent_rmse`` — √mean((z − z_T)²) of the final (VAE-scaled) latents;
    * ``mel_l1`` — mean |log-mel − log-mel_T| of the decoded mels (natural-log units);
    * ``embedding_cosine`` — cosine of the evaluator's audio embeddings;
    * ``attribute_agreement`` — the fraction of classifier heads that predict the same class;
    * ``clap_difference`` — CLAP(clip, caption) − CLAP(teacher's clip, caption);
    * ``acc_difference`` (with ``targets``) — the clip's mean attribute correctness minus the
      teacher clip's (each the fraction of heads that recover the caption's attribute)."""
    n = latents.shape[0]
    heads = sorted(features.logits)
    agree = torch.stack(
        [(features.logits[h].argmax(-1) == teacher_features.logits[h].argmax(-1)).double() for h in heads]
    ).mean(0)
    out = {
        "latent_rmse": (latents.double() - teacher_latents.double()).reshape(n, -1).pow(2).mean(1).sqrt(),
        "mel_l1": (mels.double() - teacher_mels.double()).reshape(n, -1).abs().mean(1),
        "embedding_cosine": row_cosine(features.embedding, teacher_features.embedding),
        "attribute_agreement": agree,
        "clap_difference": row_cosine(features.audio_joint, text_joint)
        - row_cosine(teacher_features.audio_joint, text_joint),
    }
    if targets:
        mine = per_clip_scores(features, text_joint, targets)["acc_mean"]
        out["acc_difference"] = mine - per_clip_scores(teacher_features, text_joint, targets)["acc_mean"]
    return out


def summarise_paired(per_clip: dict[str, torch.Tensor], seed: int = 0) -> dict[str, float]:
    """``paired_<name>`` (the mean) with ``paired_<name>_lo`` / ``_hi`` (its 95 % bootstrap interval)."""
    out = {}
    for name, values in per_clip.items():
        mean, lo, hi = bootstrap_mean_ci(values, seed=seed)
        out.update({f"paired_{name}": mean, f"paired_{name}_lo": lo, f"paired_{name}_hi": hi})
    return out
