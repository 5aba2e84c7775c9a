"""The evaluation suite shared by ``bsa evaluate`` and the stage-evaluation callback: waveforms +
captions in, FAD / IS / CLAP score / attribute accuracy out (SPEC §6).

``EvaluationSuite`` composes the backbones that are available: the embedded evaluator always
(attribute accuracy, and IS / FAD / CLAP unless replaced), a frechet-audio-distance model for FAD
(``eval.fad_backbone``), laion-clap for the CLAP score (``eval.clap_checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bsa.metrics.embedded import AudioFeatures, EmbeddedBackbone
from bsa.metrics.frechet import GaussianStats, frechet_from_stats
from bsa.metrics.scores import attribute_accuracy, clap_score, inception_score


def stats_of(features: AudioFeatures) -> GaussianStats:
    return GaussianStats.of(features.embedding)


@dataclass
class EvaluationSuite:
    embedded: EmbeddedBackbone
    fad: object | None = None  # bsa.metrics.backbones.FadLibraryBackbone
    clap: object | None = None  # bsa.metrics.backbones.LaionClap
    notes: list[str] = field(default_factory=list)

    def features(self, waves: torch.Tensor) -> AudioFeatures:
        """waves [N, L] at 16 kHz → the features every metric needs."""
        f = self.embedded.features(waves)
        if self.fad is not None:
            f.embedding = self.fad.embed(waves)
            probs = self.fad.class_probs(waves)
            if probs is not None:
                f.probs = probs
        if self.clap is not None:
            f.audio_joint = self.clap.audio_embed(waves)
        return f

    def text_joint(self, text_emb: torch.Tensor, captions: list[str]) -> torch.Tensor:
        return self.clap.text_embed(captions) if self.clap is not None else self.embedded.text_joint(text_emb)

    def protocol(self) -> dict:
        """What each number was computed with (recorded next to every result)."""
        return {
            "fad_backbone": self.fad.description if self.fad is not None else "embedded evaluator @ 16000 Hz",
            "is_classifier": "PANNs CNN14 (AudioSet, 527 classes)"
            if self.fad is not None and self.fad.name == "pann"
            else "embedded evaluator source head (11 classes)",
            "clap": self.clap.description if self.clap is not None else "embedded evaluator joint space",
        }


def score(
    suite: EvaluationSuite | EmbeddedBackbone,
    features: AudioFeatures,
    text_joint: torch.Tensor,
    targets: dict[str, torch.Tensor] | None,
    references: dict[str, GaussianStats],
    stats: GaussianStats | None = None,
) -> dict[str, float]:
    """FAD against each reference set, IS, CLAP score, attribute accuracy.

    ``stats``: the Gaussian statistics of the generated set when they were reduced across ranks
    (default: computed from ``features``). ``text_joint``: the captions in CLAP space.
    """
    stats = stats if stats is not None else stats_of(features)
    out = {f"fad_{name}": frechet_from_stats(stats, ref) for name, ref in references.items()}
    if features.probs is not None:
        out["is"] = inception_score(features.probs)
    elif "source" in features.logits:
        out["is"] = inception_score(features.logits["source"].softmax(-1))
    out["clap"] = clap_score(features.audio_joint, text_joint)
    if targets:
        acc = attribute_accuracy(features.logits, targets)
        out.update({f"acc_{k}": v for k, v in acc.items()})
        out["acc_mean"] = sum(acc.values()) / len(acc)
    return out
