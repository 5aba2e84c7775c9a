"""What an exported stage folder says about itself (``bsa_stage.json``) and the grid it samples on."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

STAGE_FILE = "bsa_stage.json"


def is_stage_folder(path: str | Path) -> bool:
    return (Path(path) / STAGE_FILE).is_file()


def read_stage(folder: str | Path) -> dict:
    path = Path(folder) / STAGE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a bsa stage folder (no {STAGE_FILE})")
    return json.loads(path.read_text())


def prediction_type_of(path: str | Path, default: str) -> str:
    """The output parameterisation of a model folder: a stage's own (``bsa_stage.json``), else ``default``."""
    return read_stage(path).get("prediction_type", default) if is_stage_folder(path) else default


def stage_grid(
    stage: dict | None,
    num_steps: int,
    num_train_timesteps: int = 1000,
    base_steps=None,
    grid_power: float = 1.0,
):
    """The timestep grid to sample an N-step model on: for an exported stage at its own step count,
    the grid it was distilled on (``timesteps`` of ``bsa_stage.json``: below 25 steps of a 200-step
    base it is not ``step_grid(N)``); at another step count, ``sampling_grid`` of its base — with a
    warning, since the stage was not trained on that grid. ``base_steps`` is the fallback base for
    models that are not stages (a teacher); ``grid_power`` their base grid's spacing (a stage's
    own ``grid_power`` wins)."""
    from bsa.diffusion import sampling_grid

    if stage is None:
        return sampling_grid(num_steps, base_steps, num_train_timesteps, grid_power)
    base = stage.get("base_steps", base_steps)
    grid = sampling_grid(num_steps, base, num_train_timesteps, stage.get("grid_power", 1.0))
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
