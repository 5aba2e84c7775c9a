"""Pictures and sounds of generated clips for people: spectrogram PNGs and compressed audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bsa.audio import MelParams, log_mel, write_wav

# magma-like colour stops (value → RGB), interpolated linearly
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array(
    [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float64
)


def spectrogram_image(
    wave: torch.Tensor, mel: MelParams = MelParams(), dynamic_range_db: float = 80.0
) -> np.ndarray:
    """A 16 kHz clip [L] → an RGB uint8 image [mels, frames, 3] of its log-mel, low frequencies at
    the bottom, the loudest bin white and ``dynamic_range_db`` below it black."""
    spec = log_mel(wave.float().reshape(1, -1).cpu(), mel)[0].T.numpy()  # [mels, frames], natural log
    db = spec * (20.0 / np.log(10.0))  # log-magnitude → dB
    v = np.clip((db - (db.max() - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)[::-1]
    rgb = np.stack([np.interp(v, _STOPS, _COLOURS[:, c]) for c in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)


def save_spectrogram(path: str | Path, wave: torch.Tensor, scale: int = 2) -> Path:
    """Write the spectrogram of ``wave`` as a PNG (atomically), each bin ``scale``×``scale`` pixels."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(spectrogram_image(wave))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def save_clip(
    folder: str | Path, name: str, wave: torch.Tensor, sample_rate: int = 16000
) -> tuple[Path, Path]:
    """``folder/name.ogg`` (Ogg Vorbis) and ``folder/name.png`` (its spectrogram)."""
    folder = Path(folder)
    audio = folder / f"{name}.ogg"
    write_wav(audio, wave.float().cpu(), sample_rate)
    return audio, save_spectrogram(folder / f"{name}.png", wave)
