"""Vocoders: log-mel [B, T, n_mels] → waveform [B, T·hop].

* ``GriffinLimVocoder`` (embedded default, no weights): exp → torchaudio ``InverseMelScale``
  (least squares onto the linear spectrogram) → torchaudio ``GriffinLim``. Its config mirrors the
  fields of ``SpeechT5HifiGan`` that ``AudioLDMPipeline`` reads (``sampling_rate``,
  ``upsample_rates`` with product = hop length), so it plugs into that pipeline.
* AudioLDM's ``SpeechT5HifiGan`` from a local ``vocoder/`` folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchaudio
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config


class GriffinLimVocoder(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sampling_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 160,
        win_length: int = 1024,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        n_iter: int = 32,
        upsample_rates: tuple[int, ...] = (160,),
    ):
        super().__init__()
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=n_fft // 2 + 1,
            n_mels=n_mels,
            sample_rate=sampling_rate,
            f_min=f_min,
            f_max=f_max,
            norm="slaney",
            mel_scale="slaney",
        )
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            power=1.0,
            n_iter=n_iter,
            momentum=0.99,
            rand_init=False,
        )

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel [B, T, n_mels] (or [B, 1, T, n_mels]) → waveform [B, T·hop], float32."""
        if log_mel.dim() == 4:
            log_mel = log_mel.squeeze(1)
        mel = log_mel.float().exp().transpose(1, 2)  # [B, n_mels, T]
        linear = self.inverse_mel(mel).clamp(min=0.0)
        wave = self.griffin_lim(linear)
        target = log_mel.shape[1] * self.config.hop_length
        return torch.nn.functional.pad(wave, (0, max(0, target - wave.shape[-1])))[..., :target]


def load_vocoder(spec: str) -> torch.nn.Module:
    """``"griffin-lim"`` or AudioLDM's ``vocoder/`` folder (``SpeechT5HifiGan``; never downloaded)."""
    if spec == "griffin-lim":
        return GriffinLimVocoder().eval()
    folder = Path(spec)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no vocoder here (expected AudioLDM's vocoder/ folder, or 'griffin-lim')"
        )
    from transformers import SpeechT5HifiGan

    return SpeechT5HifiGan.from_pretrained(folder, local_files_only=True).eval()
