"""The evaluation suite shared by the CLI and the callbacks: waveforms + captions in, metrics out."""

from __future__ import annotations

import torch

from bsa.metrics.embedded import AudioFeatures, EmbeddedBackbone
from bsa.metrics.frechet import GaussianStats, frechet_from_stats
from bsa.metrics.scores import attribute_accuracy, clap_score, inception_score


def stats_of(features: AudioFeatures) -> GaussianStats:
    s = GaussianStats.empty(features.embedding.shape[1])
    s.update(features.embedding)
    return s


def score(
    backbone: EmbeddedBackbone,
    features: AudioFeatures,
    text_emb: torch.Tensor,
    targets: dict[str, torch.Tensor] | None,
    references: dict[str, GaussianStats],
) -> dict[str, float]:
    """FAD against each reference set, IS (source head), CLAP score, attribute accuracy."""
    stats = stats_of(features)
    stats.all_reduce()
    out = {f"fad_{name}": frechet_from_stats(stats, ref) for name, ref in references.items()}
    if "source" in features.logits:
        out["is"] = inception_score(features.logits["source"].softmax(-1))
    out["clap"] = clap_score(features.audio_joint, backbone.text_joint(text_emb))
    if targets:
        acc = attribute_accuracy(features.logits, targets)
        out.update({f"acc_{k}": v for k, v in acc.items()})
        out["acc_mean"] = sum(acc.values()) / len(acc)
    return out
