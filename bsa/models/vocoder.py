"""Vocoders: log-mel [B, T, n_mels] → waveform [B, T·hop].

* ``GriffinLimVocoder`` (embedded default, no weights): exp → torchaudio ``InverseMelScale``
  (least squares onto the linear spectrogram) → torchaudio ``GriffinLim``. Its config mirrors the
  fields of ``SpeechT5HifiGan`` that ``AudioLDMPipeline`` reads (``sampling_rate``,
  ``upsample_rates`` with product = hop length), so it plugs into that pipeline.
* ``MagnitudeVocoder``: a trained mel → linear-magnitude network ahead of that Griffin-Lim; the
  shipped one is ``embedded:vocoder`` (``make vocoder``, the embedded-cpu preset's recipe).
* ``SpeechT5HifiGan`` (HiFi-GAN, Kong et al. 2020) in transformers' layout, as AudioLDM ships it:
  AudioLDM's own from a local ``vocoder/`` folder, or one trained on the embedded set's mels by
  ``make vocoder ARGS=train.vocoder.kind=hifigan`` (:func:`hifigan_config`).
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
        return self.waveform(self.inverse_mel(mel).clamp(min=0.0), log_mel.shape[1])

    def waveform(self, linear: torch.Tensor, frames: int) -> torch.Tensor:
        """A linear magnitude [B, n_fft/2 + 1, T] → Griffin-Lim's waveform [B, frames·hop], aligned
        with the frames of :func:`bsa.audio.log_mel`."""
        wave = self.griffin_lim(linear)
        # GriffinLim's frames are centred (frame k at k·hop); bsa.audio.log_mel's frame k is centred
        # at k·hop + n_fft/2 − (n_fft − hop)/2 (its reflect padding, center=False): hop/2 later.
        # Unshifted, every clip came out half a hop early (mel L1 against the input +15 %).
        offset = self.config.n_fft // 2 - (self.config.n_fft - self.config.hop_length) // 2
        target = frames * self.config.hop_length
        wave = torch.nn.functional.pad(wave, (offset, 0))
        return torch.nn.functional.pad(wave, (0, max(0, target - wave.shape[-1])))[..., :target]


class MagnitudeVocoder(ModelMixin, ConfigMixin):
    """A trained mel → linear-magnitude network ahead of Griffin-Lim (Tacotron's post-net, Wang et
    al. 2017, §3.3, with Griffin-Lim as there): the log-magnitude is the mel's least-squares inverse
    plus a learned correction (1-D convolutions over frames, the last one zero-initialised, so that
    the untrained vocoder is ``GriffinLimVocoder``), then Griffin-Lim on its exponent. Trained by
    ``make vocoder`` with ``train.vocoder.kind=magnitude`` on the L1 distance of log-magnitudes
    (:class:`bsa.lit.vocoder.MagnitudeVocoderModule`): on this data the mel's inverse, not the
    phase, is most of Griffin-Lim's error (docs/results/teacher.md, "Where Griffin-Lim's error comes from")."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sampling_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 160,
        n_mels: int = 64,
        channels: int = 256,
        blocks: int = 4,
        kernel_size: int = 5,
        n_iter: int = 32,
        upsample_rates: tuple[int, ...] = (160,),
    ):
        super().__init__()
        self.griffin_lim = GriffinLimVocoder(
            sampling_rate=sampling_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=n_fft,
            n_mels=n_mels,
            n_iter=n_iter,
        )
        for transform in (self.griffin_lim.inverse_mel, self.griffin_lim.griffin_lim):
            for name, buffer in list(transform.named_buffers(recurse=False)):  # derived: not saved
                transform.register_buffer(name, buffer, persistent=False)
        pad = kernel_size // 2
        self.inp = torch.nn.Conv1d(n_mels, channels, kernel_size, padding=pad)
        self.residual = torch.nn.ModuleList(
            torch.nn.Sequential(
                torch.nn.GroupNorm(8, channels),
                torch.nn.GELU(),
                torch.nn.Conv1d(channels, channels, kernel_size, padding=pad),
            )
            for _ in range(blocks)
        )
        self.out = torch.nn.Conv1d(channels, n_fft // 2 + 1, 1)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def log_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel [B, T, n_mels] → the log linear magnitude [B, n_fft/2 + 1, T] (floored at 1e-5,
        as ``log_mel`` floors the mel)."""
        mel = log_mel.float().transpose(1, 2)  # [B, n_mels, T]
        base = self.griffin_lim.inverse_mel(mel.exp()).clamp(min=1e-5).log()
        h = self.inp(mel)
        for block in self.residual:
            h = h + block(h)
        return base + self.out(h)

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """log_mel [B, T, n_mels] (or [B, 1, T, n_mels]) → waveform [B, T·hop], float32."""
        if log_mel.dim() == 4:
            log_mel = log_mel.squeeze(1)
        return self.griffin_lim.waveform(self.log_magnitude(log_mel).exp(), log_mel.shape[1])


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
    """``"griffin-lim"``, ``"embedded:vocoder"`` (the shipped ``MagnitudeVocoder``), a folder that
    ``make vocoder`` wrote (its ``config.json`` names the class) or AudioLDM's ``vocoder/`` folder
    (``SpeechT5HifiGan``; never downloaded)."""
    if spec == "griffin-lim":
        return GriffinLimVocoder().eval()
    from bsa.models.assets import resolve_model_path

    folder = resolve_model_path(spec)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no vocoder here (expected AudioLDM's vocoder/ folder, or 'griffin-lim')"
        )
    import json

    if json.loads((folder / "config.json").read_text()).get("_class_name") == MagnitudeVocoder.__name__:
        return (
            MagnitudeVocoder.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False)
            .float()
            .eval()
        )
    from transformers import SpeechT5HifiGan

    return (
        SpeechT5HifiGan.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False).float().eval()
    )
