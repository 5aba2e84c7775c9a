"""A distilled stage on disk, loadable from its folder alone (diffusers layout):

stage_folder/
  unet/               diffusers UNet2DConditionModel (save_pretrained)
  vae/                the mel VAE (copied, so the folder stands alone)
  vocoder/            Griffin-Lim config, the shipped MagnitudeVocoder, or AudioLDM's SpeechT5HifiGan
  scheduler/          DDIMScheduler config (AudioLDM's betas, trailing spacing, α_final = 1)
  bsa_stage.json      num_sample_steps, stage, guidance, text encoder, null embedding, config
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from bsa.durable import replace_durably
from bsa.models.stages import STAGE_FILE, is_stage_folder, read_stage, stage_grid

__all__ = ["STAGE_FILE", "NonFiniteWeightsError", "is_stage_folder", "read_stage", "save_stage", "stage_grid"]


class NonFiniteWeightsError(ValueError):
    """A model with NaN/inf weights was about to be exported or promoted."""


def save_stage(
    folder: str | Path,
    unet: torch.nn.Module,
    metadata: dict,
    vae_folder: str | Path,
    vocoder_spec: str,
    schedule_config: dict,
    text_encoder_folder: str | Path | None = None,
) -> Path:
    """Write a stage atomically: everything into ``folder.tmp``, then one rename. With AudioLDM's
    CLAP ``text_encoder_folder`` (and its sibling ``tokenizer/``), the folder is also a complete
    :class:`~bsa.models.audioldm_pipeline.DistilledAudioLDMPipeline` (``model_index.json``)."""
    from diffusers import DDIMScheduler

    from bsa.models.assets import resolve_model_path
    from bsa.models.vocoder import GriffinLimVocoder

    folder = Path(folder)
    bad = [n for n, t in unet.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise NonFiniteWeightsError(
            f"{folder}: not exported: {len(bad)} weight tensor(s) hold NaN/inf (e.g. {bad[0]})"
        )
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(tmp / "unet")
    shutil.copytree(vae_folder, tmp / "vae", ignore=shutil.ignore_patterns("training.json"))
    if vocoder_spec == "griffin-lim":
        GriffinLimVocoder().save_pretrained(tmp / "vocoder")
    else:  # a folder, or a shipped one (embedded:vocoder)
        shutil.copytree(
            resolve_model_path(vocoder_spec), tmp / "vocoder", ignore=shutil.ignore_patterns("training.json")
        )
    DDIMScheduler(
        **schedule_config, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"
    ).save_pretrained(tmp / "scheduler")
    if text_encoder_folder is not None:
        _write_audioldm_pipeline(tmp, Path(text_encoder_folder))
    (tmp / STAGE_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return replace_durably(tmp, folder)


def _write_audioldm_pipeline(tmp: Path, text_encoder_folder: Path) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, ClapTextModelWithProjection, SpeechT5HifiGan

    from bsa.models.audioldm_pipeline import DistilledAudioLDMPipeline

    pipe = DistilledAudioLDMPipeline(
        vae=AutoencoderKL.from_pretrained(tmp / "vae", low_cpu_mem_usage=False),
        unet=UNet2DConditionModel.from_pretrained(tmp / "unet", low_cpu_mem_usage=False),
        text_encoder=ClapTextModelWithProjection.from_pretrained(text_encoder_folder, local_files_only=True),
        tokenizer=AutoTokenizer.from_pretrained(
            text_encoder_folder.parent / "tokenizer", local_files_only=True
        ),
        scheduler=DDIMScheduler.from_pretrained(tmp / "scheduler"),
        vocoder=SpeechT5HifiGan.from_pretrained(tmp / "vocoder", local_files_only=True),
    )
    pipe.save_pretrained(tmp)
