"""Where the Griffin-Lim vocoder's reconstruction error comes from, on the embedded test clips:
the mel L1 of vocoder(log_mel(clip)) against log_mel(clip) with the output moved by a few samples
(the vocoder's own alignment is 0; before 2026-11-28 it sat at −80, half a hop early), with more
iterations, and with the true STFT magnitude in place of the mel's least-squares inverse (what a
better magnitude estimate could at most gain). Writes results/vocoder-alignment/summary.json.
    bsa data experiments/embedded-cpu.yaml && python experiments/cpu/griffin_lim_alignment.py --clips 64
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import soundfile as sf
import torch
import torchaudio

from bsa.audio import MelParams, log_magnitude, log_mel
from bsa.models.vocoder import GriffinLimVocoder


def moved(wave: torch.Tensor, shift: int) -> torch.Tensor:
    """``wave`` later by ``shift`` samples (earlier when negative), same length."""
    padded = torch.nn.functional.pad(wave, (max(shift, 0), max(-shift, 0)))
    return padded[:, max(-shift, 0) : max(-shift, 0) + wave.shape[1]]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/embedded")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--out", default="results/vocoder-alignment/summary.json")
    args = parser.parse_args()
    root = Path(args.data)
    rows = list(csv.DictReader((root / "test.csv").open()))[: args.clips]
    wave = torch.stack(
        [
            torch.from_numpy(sf.read(str(root / "audio/test" / f"{r['youtube_id']}.wav"), dtype="float32")[0])
            for r in rows
        ]
    )
    p = MelParams()
    mel = log_mel(wave, p)

    def error(w: torch.Tensor) -> float:
        return round((log_mel(w, p) - mel).abs().mean().item(), 4)

    out = GriffinLimVocoder()(mel)
    shifts = {str(s): error(moved(out, s)) for s in (-80, -40, 0, 40, 80)}
    iterations = {str(n): error(GriffinLimVocoder(n_iter=n)(mel)) for n in (32, 100)}
    # the true magnitude, framed as log_mel frames it, through the same (aligned) Griffin-Lim
    voc = GriffinLimVocoder()
    true_mag = voc.waveform(log_magnitude(wave, p).exp(), mel.shape[1])
    inverse = voc.inverse_mel(mel.exp().transpose(1, 2)).clamp(min=p.clamp_min).log()
    log_mag = (inverse - log_magnitude(wave, p)).abs().mean().item()
    summary = {
        "mel_l1_by_shift_samples": shifts,
        "mel_l1_by_iterations": iterations,
        "mel_l1_true_magnitude": error(true_mag),
        "log_magnitude_l1_of_the_mel_inverse": round(log_mag, 4),
        "clips": len(rows),
        "device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python " + " ".join(sys.argv),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
