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
import warnings
from pathlib import Path

import torch

from bsa.durable import replace_durably

STAGE_FILE = "bsa_stage.json"


class NonFiniteWeightsError(ValueError):
    """A model with NaN/inf weights was about to be exported or promoted."""


def stage_grid(stage: dict | None, num_steps: int, num_train_timesteps: int = 1000, base_steps=None):
    """The timestep grid to sample an N-step model on: for an exported stage at its own step count,
    the grid it was distilled on (``timesteps`` of ``bsa_stage.json``: below 25 steps of a 200-step
    base it is not ``step_grid(N)``); at another step count, ``sampling_grid`` of its base — with a
    warning, since the stage was not trained on that grid. ``base_steps`` is the fallback base for
    models that are not stages (a teacher)."""
    from bsa.diffusion import sampling_grid

    if stage is None:
        return sampling_grid(num_steps, base_steps, num_train_timesteps)
    grid = sampling_grid(num_steps, stage.get("base_steps", base_steps), num_train_timesteps)
    if stage.get("mode") == "guided":  # trained at every t: any grid of its base is its own
        return grid
    trained = stage.get("timesteps")
    if int(stage["num_sample_steps"]) == num_steps:
        return torch.tensor(trained, dtype=torch.long) if trained is not None else grid
    shown = grid.tolist() if num_steps <= 8 else f"a {num_steps}-step grid"
    warnings.warn(
        f"stage {stage.get('stage')} was distilled for {stage['num_sample_steps']} steps"
        f"{f' on {trained}' if trained is not None and len(trained) <= 8 else ''}; sampling it at {num_steps} steps "
        f"uses {shown}, which it was not trained on",
        stacklevel=2,
    )
    return grid


def is_stage_folder(path: str | Path) -> bool:
    return (Path(path) / STAGE_FILE).is_file()


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
    else:
        shutil.copytree(vocoder_spec, tmp / "vocoder")
    DDIMScheduler(
        **schedule_config, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"
    ).save_pretrained(tmp / "scheduler")
    if text_encoder_folder is not None:
        _write_audioldm_pipeline(tmp, Path(text_encoder_folder))
    (tmp / STAGE_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return replace_durably(tmp, folder)


def read_stage(folder: str | Path) -> dict:
    path = Path(folder) / STAGE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a bsa stage folder (no {STAGE_FILE})")
    return json.loads(path.read_text())


def _write_audioldm_pipeline(tmp: Path, text_encoder_folder: Path) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, ClapTextModelWithProjection, SpeechT5HifiGan

    from bsa.models.audioldm_pipeline import DistilledAudioLDMPipeline

    pipe = DistilledAudioLDMPipeline(
        vae=AutoencoderKL.from_pretrained(tmp / "vae"),
        unet=UNet2DConditionModel.from_pretrained(tmp / "unet"),
        text_encoder=ClapTextModelWithProjection.from_pretrained(text_encoder_folder, local_files_only=True),
        tokenizer=AutoTokenizer.from_pretrained(
            text_encoder_folder.parent / "tokenizer", local_files_only=True
        ),
        scheduler=DDIMScheduler.from_pretrained(tmp / "scheduler"),
        vocoder=SpeechT5HifiGan.from_pretrained(tmp / "vocoder", local_files_only=True),
    )
    pipe.save_pretrained(tmp)
