"""The embedded evaluation backbone: the shipped AudioEvaluator on log-mels of 16 kHz audio."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bsa.audio import MelParams, log_mel


@dataclass
class AudioFeatures:
    embedding: torch.Tensor  # [N, D]  (FAD)
    logits: dict[str, torch.Tensor]  # attribute → [N, K]  (IS on "source", attribute accuracy)
    audio_joint: torch.Tensor  # [N, J]  (CLAP score)
    probs: torch.Tensor | None = (
        None  # [N, K] class probabilities of an IS classifier other than the source head
    )

    def select(self, index: torch.Tensor) -> AudioFeatures:
        """The rows ``index`` of every feature."""
        return AudioFeatures(
            self.embedding[index],
            {k: v[index] for k, v in self.logits.items()},
            self.audio_joint[index],
            None if self.probs is None else self.probs[index],
        )

    def cat(self, others: list[AudioFeatures]) -> AudioFeatures:
        """This set followed by ``others`` (e.g. the slices of all ranks)."""
        every = [self, *others]
        return AudioFeatures(
            torch.cat([f.embedding for f in every]),
            {k: torch.cat([f.logits[k] for f in every]) for k in self.logits},
            torch.cat([f.audio_joint for f in every]),
            None if self.probs is None else torch.cat([f.probs for f in every]),
        )


class EmbeddedBackbone:
    name = "embedded"
    sample_rate = 16000

    def __init__(self, evaluator: torch.nn.Module, mel: MelParams = MelParams()):
        self.model = evaluator.eval()
        self.mel = mel

    @torch.no_grad()
    def features(self, waves: torch.Tensor, batch_size: int = 128) -> AudioFeatures:
        """waves [N, L] at 16 kHz → embeddings, attribute logits and joint audio embeddings."""
        device = next(self.model.parameters()).device
        embs, joints, logits = [], [], {}
        for chunk in waves.split(batch_size):
            e = self.model.embed(log_mel(chunk.to(device), self.mel))
            embs.append(e.float().cpu())
            joints.append(self.model.audio_joint(e).float().cpu())
            for k, v in self.model.classify(e).items():
                logits.setdefault(k, []).append(v.float().cpu())
        return AudioFeatures(torch.cat(embs), {k: torch.cat(v) for k, v in logits.items()}, torch.cat(joints))

    @torch.no_grad()
    def text_joint(self, text_emb: torch.Tensor, captions: list[str] | None = None) -> torch.Tensor:
        device = next(self.model.parameters()).device
        return self.model.text_joint(text_emb.to(device)).float().cpu()
