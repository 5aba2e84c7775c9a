"""HiFi-GAN's discriminators (Kong et al. 2020, §2.2–2.3), for training the embedded vocoder
adversarially: the multi-period discriminator (MPD: the waveform folded into [T/p, p] for periods
2, 3, 5, 7, 11, 2-D convolutions along time) and the multi-scale discriminator (MSD: 1-D
convolutions on the raw, ×2- and ×4-average-pooled waveform). ``width`` scales every channel count
(1.0 = the paper's)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

LRELU = 0.1


def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


def _conv_stack(
    convs: nn.ModuleList, post: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU convolutions, then the output convolution: (scores [B, *], every feature map)."""
    features = []
    for conv in convs:
        x = nn.functional.leaky_relu(conv(x), LRELU)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, width: float = 1.0):
        super().__init__()
        self.period = period
        chans = [1, *(_ch(c, width) for c in (32, 128, 512, 1024))]
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)))
                for a, b in zip(chans, chans[1:], strict=False)
            ]
            + [weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), 1, padding=(2, 0)))]
        )
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """wave [B, 1, T] → (scores [B, *], feature maps)."""
        b, c, t = wave.shape
        if t % self.period:
            wave = nn.functional.pad(wave, (0, self.period - t % self.period), "reflect")
        return _conv_stack(self.convs, self.post, wave.view(b, c, -1, self.period))


class ScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0, spectral: bool = False):
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        spec = [  # (out channels, kernel, stride, groups) of the paper's MSD
            (128, 15, 1, 1), (128, 41, 2, 4), (256, 41, 2, 16), (512, 41, 4, 16),
            (1024, 41, 4, 16), (1024, 41, 1, 16), (1024, 5, 1, 1),
        ]  # fmt: skip
        layers, c_in = [], 1
        for c, k, s, g in spec:
            c_out = _ch(c, width)
            groups = g if c_in % g == 0 and c_out % g == 0 else 1
            layers.append(norm(nn.Conv1d(c_in, c_out, k, s, groups=groups, padding=k // 2)))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.post = norm(nn.Conv1d(c_in, 1, 3, 1, padding=1))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.post, wave)


class HifiGanDiscriminators(nn.Module):
    """MPD + MSD: ``forward(wave [B, T])`` → (scores, feature maps), one entry per sub-discriminator."""

    def __init__(self, width: float = 1.0, periods=(2, 3, 5, 7, 11)):
        super().__init__()
        self.periods = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)
        self.scales = nn.ModuleList(
            [ScaleDiscriminator(width, spectral=True), ScaleDiscriminator(width), ScaleDiscriminator(width)]
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wave: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        x = wave.unsqueeze(1)
        scores, features = [], []
        for d in self.periods:
            s, f = d(x)
            scores.append(s)
            features.append(f)
        for i, d in enumerate(self.scales):
            if i:
                x = self.pool(x)
            s, f = d(x)
            scores.append(s)
            features.append(f)
        return scores, features


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN (HiFi-GAN eq. 1): Σ_k E[(D_k(y) − 1)²] + E[D_k(ŷ)²]."""
    return sum(((r - 1) ** 2).mean() + (f**2).mean() for r, f in zip(real, fake, strict=True))


def generator_adversarial_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN (HiFi-GAN eq. 2): Σ_k E[(D_k(ŷ) − 1)²]."""
    return sum(((f - 1) ** 2).mean() for f in fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """HiFi-GAN eq. 4: Σ over sub-discriminators and layers of the mean L1 between feature maps."""
    return sum(
        (r.detach() - f).abs().mean()
        for rs, fs in zip(real, fake, strict=True)
        for r, f in zip(rs, fs, strict=True)
    )
