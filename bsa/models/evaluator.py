"""The embedded evaluator (SPEC §6–§7): an audio encoder on log-mels with
* an embedding for FAD (the pooled penultimate features),
* classifier heads over the embedded data set's attributes (source → IS; all → attribute accuracy),
* a text–audio contrastive head (CLAP-style: audio and caption embeddings in one space → CLAP score).
A diffusers ``ModelMixin``, so it is saved and loaded with ``save_pretrained``/``from_pretrained``.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(8, c_out),
        nn.SiLU(),
        nn.MaxPool2d(2),
    )


class AudioEvaluator(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        labels: dict[str, list[str]] | None = None,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        embed_dim: int = 256,
        text_dim: int = 384,
        joint_dim: int = 128,
    ):
        super().__init__()
        labels = labels or {}
        layers, c = [], 1
        for w in widths:
            layers.append(_block(c, w))
            c = w
        self.encoder = nn.Sequential(*layers)
        self.embed_proj = nn.Sequential(nn.Linear(2 * c, embed_dim), nn.SiLU())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(embed_dim, len(values)) for name, values in labels.items()}
        )
        self.audio_proj = nn.Linear(embed_dim, joint_dim)
        self.text_proj = nn.Sequential(nn.Linear(text_dim, 256), nn.SiLU(), nn.Linear(256, joint_dim))
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's init

    def embed(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel [B, T, n_mels] → [B, embed_dim]: the FAD embedding."""
        h = self.encoder(log_mel.unsqueeze(1).float())
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.embed_proj(h)

    def classify(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-attribute logits from :meth:`embed`'s output."""
        return {name: head(embedding) for name, head in self.heads.items()}

    def audio_joint(self, embedding: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.audio_proj(embedding), dim=-1)

    def text_joint(self, text_emb: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text_proj(text_emb.float()), dim=-1)
