"""Vocoders: log-mel [B, T, n_mels] → waveform [B, T·hop].

* ``GriffinLimVocoder`` (embedded default, no weights): exp → torchaudio ``InverseMelScale``
  (least squares onto the linear spectrogram) → torchaudio ``GriffinLim``. Its config mirrors the
  fields of ``SpeechT5HifiGan`` that ``AudioLDMPipeline`` reads (``sampling_rate``,
  ``upsample_rates`` with product = hop length), so it plugs into that pipeline.
* ``SpeechT5HifiGan`` (HiFi-GAN, Kong et al. 2020) in transformers' layout, as AudioLDM ships it:
  AudioLDM's own from a local ``vocoder/`` folder, or the embedded one (``embedded:vocoder``)
  trained on the embedded set's mels by ``make vocoder`` (:func:`hifigan_config`).
"""

from __future__ import annotations

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
        # GriffinLim's frames are centred (frame k at k·hop); bsa.audio.log_mel's frame k is centred
        # at k·hop + n_fft/2 − (n_fft − hop)/2 (its reflect padding, center=False): hop/2 later.
        # Unshifted, every clip came out half a hop early (mel L1 against the input +15 %).
        offset = self.config.n_fft // 2 - (self.config.n_fft - self.config.hop_length) // 2
        target = log_mel.shape[1] * self.config.hop_length
        wave = torch.nn.functional.pad(wave, (offset, 0))
        return torch.nn.functional.pad(wave, (0, max(0, target - wave.shape[-1])))[..., :target]


# HiFi-GAN widths (upsample_initial_channel); AudioLDM's vocoder uses 1024 (about 55 M parameters)
HIFIGAN_SIZES = {"tiny": 64, "embedded": 256}
# the discriminators' channel scale (bsa.models.discriminators; 1.0 = HiFi-GAN's 70.7 M) per vocoder size
DISCRIMINATOR_WIDTHS = {"tiny": 0.05, "embedded": 0.25}


def hifigan_config(size: str = "embedded", n_mels: int = 64, sample_rate: int = 16000) -> dict:
    """A ``SpeechT5HifiGanConfig`` for bsa's mels (AudioLDM's layout: 16 kHz, hop 160 = 5·4·2·2·2,
    its kernel sizes; inputs are raw log-mels, ``normalize_before=False``). ``embedded``: 3.5 M
    parameters."""
    if size not in HIFIGAN_SIZES:
        raise ValueError(f"unknown vocoder size {size!r}; expected one of {sorted(HIFIGAN_SIZES)}")
    return dict(
        model_in_dim=n_mels,
        sampling_rate=sample_rate,
        upsample_initial_channel=HIFIGAN_SIZES[size],
        upsample_rates=[5, 4, 2, 2, 2],
        upsample_kernel_sizes=[16, 16, 8, 4, 4],
        resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        normalize_before=False,
    )


def load_vocoder(spec: str) -> torch.nn.Module:
    """``"griffin-lim"``, ``"embedded:vocoder"`` (the shipped HiFi-GAN) or AudioLDM's ``vocoder/``
    folder (``SpeechT5HifiGan``; never downloaded)."""
    if spec == "griffin-lim":
        return GriffinLimVocoder().eval()
    from bsa.models.assets import resolve_model_path

    folder = resolve_model_path(spec)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no vocoder here (expected AudioLDM's vocoder/ folder, or 'griffin-lim')"
        )
    from transformers import SpeechT5HifiGan

    return SpeechT5HifiGan.from_pretrained(folder, local_files_only=True).float().eval()
