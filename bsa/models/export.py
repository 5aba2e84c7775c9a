"""A distilled stage on disk, loadable from its folder alone (diffusers layout):

stage_folder/
  unet/               diffusers UNet2DConditionModel (save_pretrained)
  vae/                the mel VAE (copied, so the folder stands alone)
  vocoder/            Griffin-Lim config, or AudioLDM's SpeechT5HifiGan
  scheduler/          DDIMScheduler config (AudioLDM's betas, trailing spacing, α_final = 1)
  bsa_stage.json      num_sample_steps, stage, guidance, text encoder, null embedding, config
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

STAGE_FILE = "bsa_stage.json"


def is_stage_folder(path: str | Path) -> bool:
    return (Path(path) / STAGE_FILE).is_file()


def save_stage(
    folder: str | Path,
    unet: torch.nn.Module,
    metadata: dict,
    vae_folder: str | Path,
    vocoder_spec: str,
    schedule_config: dict,
) -> Path:
    """Write a stage atomically: everything into ``folder.tmp``, then one rename."""
    from diffusers import DDIMScheduler

    from bsa.models.vocoder import GriffinLimVocoder

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(tmp / "unet")
    shutil.copytree(vae_folder, tmp / "vae", ignore=shutil.ignore_patterns("training.json"))
    if vocoder_spec == "griffin-lim":
        GriffinLimVocoder().save_pretrained(tmp / "vocoder")
    else:
        shutil.copytree(vocoder_spec, tmp / "vocoder")
    DDIMScheduler(
        **schedule_config, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"
    ).save_pretrained(tmp / "scheduler")
    (tmp / STAGE_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def read_stage(folder: str | Path) -> dict:
    path = Path(folder) / STAGE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a bsa stage folder (no {STAGE_FILE})")
    return json.loads(path.read_text())
