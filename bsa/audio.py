"""Audio I/O with checks, and AudioLDM's log-mel front end (SPEC §1), on soundfile + torchaudio.

Every problem with an input file raises :class:`AudioError` whose message names the file and the
problem, so preprocessing can skip the row and report why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio


class AudioError(ValueError):
    """A bad audio input: the message names the file and the problem."""


@dataclass(frozen=True)
class MelParams:
    """AudioLDM's mel front end: 16 kHz, n_fft 1024, hop 160, win 1024, 64 mels, 0–8000 Hz,
    magnitude (power 1) mel with Slaney scale and norm, log(clamp(·, 1e-5)) (AudioLDM's TacotronSTFT)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    clamp_min: float = 1e-5

    def frames(self, num_samples: int) -> int:
        """Frames of :func:`log_mel` for a clip of ``num_samples``: num_samples // hop (AudioLDM pads
        (n_fft − hop)/2 on both sides, so 2.56 s → 256 frames, 10.24 s → 1024)."""
        return num_samples // self.hop_length

    def as_dict(self) -> dict:
        return asdict(self)


_MEL_CACHE: dict[tuple, torchaudio.transforms.MelSpectrogram] = {}


def _mel_transform(p: MelParams) -> torchaudio.transforms.MelSpectrogram:
    key = tuple(asdict(p).values())
    if key not in _MEL_CACHE:
        # its window and filterbank outlive the caller: made under torch.inference_mode (a Lightning
        # validation, the latent cache) they would be inference tensors, and every later log_mel
        # with gradients (the vocoder's mel loss) would fail
        with torch.inference_mode(False):
            _MEL_CACHE[key] = _new_mel_transform(p)
    return _MEL_CACHE[key]


def _new_mel_transform(p: MelParams) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=p.sample_rate,
        n_fft=p.n_fft,
        win_length=p.win_length,
        hop_length=p.hop_length,
        f_min=p.f_min,
        f_max=p.f_max,
        n_mels=p.n_mels,
        power=1.0,
        norm="slaney",
        mel_scale="slaney",
        center=False,
    )


def _framing_pad(wave: torch.Tensor, params: MelParams) -> torch.Tensor:
    """wave [B, L] reflect-padded by (n_fft − hop)/2 on both sides, as AudioLDM frames it: frame k
    of the un-centred STFT then covers the clip around k·hop + hop/2, and L // hop frames."""
    pad = (params.n_fft - params.hop_length) // 2
    return torch.nn.functional.pad(wave.float().unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)


def log_magnitude(wave: torch.Tensor, params: MelParams = MelParams()) -> torch.Tensor:
    """The log linear STFT magnitude framed as :func:`log_mel` frames it (the same padding, window
    and frame count), floored as it floors the mel: wave [B, L] → [B, n_fft/2 + 1, frames]. What a
    mel → magnitude vocoder learns to predict (``bsa.models.vocoder.MagnitudeVocoder``)."""
    window = torch.hann_window(params.win_length, device=wave.device)
    spec = torch.stft(
        _framing_pad(wave, params),
        params.n_fft,
        params.hop_length,
        params.win_length,
        window,
        center=False,
        return_complex=True,
    )
    return spec.abs().clamp(min=params.clamp_min).log()[..., : params.frames(wave.shape[-1])]


def log_mel(wave: torch.Tensor, params: MelParams = MelParams()) -> torch.Tensor:
    """Log-mel spectrogram as AudioLDM computes it: wave [B, L] or [L] at params.sample_rate →
    [B, frames, n_mels] (time first, AudioLDM's layout), frames = L // hop."""
    squeeze = wave.ndim == 1
    wave = wave.reshape(1, -1) if squeeze else wave
    mel = _mel_transform(params).to(wave.device)(_framing_pad(wave, params))  # [B, n_mels, frames (+1)]
    mel = torch.log(torch.clamp(mel, min=params.clamp_min)).transpose(1, 2)
    mel = mel[:, : params.frames(wave.shape[-1])]
    return mel[0] if squeeze else mel


@dataclass
class LoadedAudio:
    wave: torch.Tensor  # [L] float32 mono at the target rate
    source_rate: int
    notes: list[str]  # what was done to it: "resampled from 44100 Hz", "padded 1.20 s → 2.56 s", ...


def load_clip(
    path: str | Path, sample_rate: int, num_samples: int, min_seconds: float = 0.5, silence_peak: float = 1e-4
) -> LoadedAudio:
    """Read ``path`` → mono float32 at ``sample_rate``, padded with zeros or cut to ``num_samples``.

    Raises :class:`AudioError` naming the file for: missing, unreadable/corrupt, empty, non-finite,
    silent (peak < ``silence_peak``) or shorter than ``min_seconds``. Resampling, down-mixing,
    padding and cutting are done and recorded in ``notes``.
    """
    import soundfile as sf  # lazy: only preprocessing reads audio

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: missing audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError on bad files
        raise AudioError(f"{path}: unreadable audio ({type(e).__name__}: {str(e).strip()[:120]})") from None
    if data.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    notes = []
    if data.shape[1] > 1:
        notes.append(f"down-mixed {data.shape[1]} channels")
    wave = torch.from_numpy(data.mean(axis=1))
    if float(wave.abs().max()) < silence_peak:
        raise AudioError(f"{path}: silent audio (peak {float(wave.abs().max()):.1e} < {silence_peak:.0e})")
    if rate != sample_rate:
        wave = torchaudio.functional.resample(wave, rate, sample_rate)
        notes.append(f"resampled from {rate} Hz")
    seconds = wave.shape[0] / sample_rate
    if seconds < min_seconds:
        raise AudioError(f"{path}: too short ({seconds:.2f} s < {min_seconds} s)")
    if wave.shape[0] < num_samples:
        notes.append(f"padded {seconds:.2f} s → {num_samples / sample_rate:.2f} s")
        wave = torch.nn.functional.pad(wave, (0, num_samples - wave.shape[0]))
    elif wave.shape[0] > num_samples:
        notes.append(f"cut {seconds:.2f} s → {num_samples / sample_rate:.2f} s")
        wave = wave[:num_samples]
    return LoadedAudio(wave.contiguous(), int(rate), notes)


def write_wav(path: str | Path, wave: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write mono audio atomically (temp file + rename): 16-bit PCM WAV, or Ogg Vorbis when the
    name ends in ``.ogg`` (the compressed clips of dashboards)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    from bsa.durable import temporary_path

    tmp = temporary_path(path)  # its own: two generators writing the same clip at once
    fmt, subtype = ("OGG", "VORBIS") if path.suffix == ".ogg" else ("WAV", "PCM_16")
    sf.write(str(tmp), np.clip(data, -1.0, 1.0).astype(np.float32), sample_rate, subtype=subtype, format=fmt)
    tmp.replace(path)


def num_samples_for(seconds: float, sample_rate: int = 16000) -> int:
    return int(math.floor(seconds * sample_rate + 0.5))
