"""The mel VAE (diffusers ``AutoencoderKL`` on [B, 1, T, n_mels] log-mels, as AudioLDM) and the
vocoders that turn mels back into waveforms."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from bsa.models.identity import load_strict, state_dict_sha256


def mel_vae_config(size: str = "embedded") -> dict:
    """AudioLDM's VAE layout (1 input channel, 8 latent channels, 3 levels → ×4 down-sampling in
    time and frequency), scaled down. ``tiny`` is for tests; ``embedded`` is the shipped model."""
    widths = {"tiny": (8, 16, 16), "embedded": (32, 64, 128)}[size]
    return dict(
        in_channels=1,
        out_channels=1,
        latent_channels=8,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=widths,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=256,
        scaling_factor=1.0,
    )


def build_vae(size: str = "embedded", seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    return AutoencoderKL(**mel_vae_config(size))


def load_vae(folder: str | Path) -> AutoencoderKL:
    """A diffusers ``AutoencoderKL`` folder (config.json + weights), strictly: never a download, a
    missing file or a mismatching weight is an error naming the folder."""
    folder = Path(folder)
    vae = load_strict(AutoencoderKL, folder, "VAE")
    if vae.config.in_channels != 1:
        raise ValueError(
            f"{folder}: a mel VAE takes 1 input channel, this one takes {vae.config.in_channels}"
        )
    return vae.eval().requires_grad_(False)


def vae_identity(vae: AutoencoderKL, name: str = "") -> dict:
    return {
        "name": name or "AutoencoderKL",
        "sha256": state_dict_sha256(vae, dict(vae.config)),
        "scaling_factor": float(vae.config.scaling_factor),
    }


def latent_shape(vae: AutoencoderKL, frames: int, n_mels: int) -> list[int]:
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    if frames % down or n_mels % down:
        raise ValueError(f"mel of {frames}×{n_mels} is not divisible by the VAE's down-sampling {down}")
    return [int(vae.config.latent_channels), frames // down, n_mels // down]


@torch.inference_mode()
def encode_mel(vae: AutoencoderKL, mel: torch.Tensor) -> torch.Tensor:
    """Raw latents (the posterior mean) of log-mels [B, 1, T, F] → [B, C, T/4, F/4]; the
    scaling factor is applied later, just in time."""
    p = next(vae.parameters())
    return vae.encode(mel.to(p.device, p.dtype)).latent_dist.mean


@torch.inference_mode()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents [B, C, T', F'] → log-mels [B, 1, T, F]."""
    p = next(vae.parameters())
    return vae.decode(latents.to(p.device, p.dtype) / vae.config.scaling_factor).sample


def read_training_record(folder: str | Path) -> dict:
    path = Path(folder) / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}
