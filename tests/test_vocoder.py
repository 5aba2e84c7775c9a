"""The embedded HiFi-GAN vocoder: its losses against hand values, and `bsa train vocoder` end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bsa.lit.vocoder import log_magnitude_distance, mel_l1, multi_resolution_stft_loss, spectral_convergence

REPO = Path(__file__).resolve().parents[1]


def test_spectral_losses_hand_values():
    s = torch.tensor([[[3.0, 4.0]]])  # ‖S‖_F = 5
    assert spectral_convergence(s, s).item() == 0.0
    assert spectral_convergence(torch.full_like(s, 1e-7), s).item() == pytest.approx(1.0, abs=1e-6)
    assert spectral_convergence(torch.tensor([[[0.0, 4.0]]]), s).item() == pytest.approx(3 / 5)
    # the norms are over the batch: a silent clip beside a loud one does not blow the ratio up
    batch = torch.stack([s[0], torch.full_like(s[0], 1e-7)])
    assert spectral_convergence(torch.zeros_like(batch) + 1e-7, batch).item() == pytest.approx(1.0, abs=1e-6)
    assert log_magnitude_distance(s * math.e, s).item() == pytest.approx(1.0)
    wave = torch.randn(2, 4096, generator=torch.Generator().manual_seed(0))
    assert multi_resolution_stft_loss(wave, wave).item() == pytest.approx(0.0, abs=1e-6)
    assert multi_resolution_stft_loss(0.5 * wave, wave).item() > 0.5  # |log 0.5| alone is 0.69


def test_mel_l1_is_zero_for_the_same_audio_and_grows_with_the_error():
    from bsa.audio import log_mel

    wave = torch.randn(1, 10240, generator=torch.Generator().manual_seed(1)) * 0.1
    assert mel_l1(wave, log_mel(wave)).item() == pytest.approx(0.0, abs=1e-6)
    assert mel_l1(wave * 2, log_mel(wave)).item() == pytest.approx(math.log(2), rel=1e-4)  # magnitude mel: ×2


def test_train_vocoder_writes_a_loadable_hifigan_that_learned(debug_env, tmp_path):
    from bsa.models.vocoder import load_vocoder

    out = tmp_path / "vocoder"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bsa.cli.train",
            "vocoder",
            "experiments/debug.yaml",
            *debug_env["overrides"],
            f"train.vocoder.out={out}",
            f"paths.output_root={tmp_path / 'runs'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["model_in_dim"] == 64
    curve = [
        r["train/loss"]
        for r in json.loads((out / "training.json").read_text())["curve"]
        if r["kind"] == "train"
    ]
    assert len(curve) == 30 and sum(curve[-5:]) < sum(curve[:5]), curve
    vocoder = load_vocoder(str(out))
    assert {p.dtype for p in vocoder.parameters()} == {torch.float32}, "float16 on disk, float32 loaded"
    with torch.no_grad():
        wave = vocoder(torch.zeros(2, 32, 64) - 5.0)
    assert wave.shape[0] == 2 and 32 * 160 <= wave.shape[1] < 33 * 160 and torch.isfinite(wave).all()
