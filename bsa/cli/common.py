"""Shared CLI plumbing: ``<preset.yaml ...> [key=value ...] [--dry-run]`` → a validated BsaConfig."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bsa.config import BsaConfig, ConfigError, load_config


def config_parser(
    prog: str, description: str, epilog: str = "", choice: tuple[str, tuple[str, ...]] | None = None
) -> argparse.ArgumentParser:
    """``[CHOICE] CONFIG.yaml ... key=value ... [--dry-run]``; ``choice`` = (name, allowed values)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if choice is not None:
        parser.add_argument(choice[0], choices=choice[1])
    parser.add_argument(
        "items",
        nargs="*",
        metavar="CONFIG.yaml | key=value",
        help="experiment YAML files (merged in order over the schema), then key=value overrides",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate the config, print the plan, and stop"
    )
    return parser


def split_items(items: list[str]) -> tuple[list[str], list[str]]:
    """Separate YAML files from ``key=value`` overrides (files must come first)."""
    files, overrides = [], []
    for item in items:
        if "=" in item:
            overrides.append(item)
        elif overrides:
            raise ConfigError(f"command line: config file {item!r} given after overrides; put files first")
        else:
            files.append(item)
    return files, overrides


def run_with_config(args: argparse.Namespace, body: Callable[[BsaConfig, argparse.Namespace], int]) -> int:
    """Load the config from ``args.items``; print a config error as one line and exit 2."""
    try:
        files, overrides = split_items(args.items)
        cfg = load_config(files, overrides)
    except ConfigError as e:
        print(f"bsa: config error: {e}", file=sys.stderr)
        return 2
    return body(cfg, args)


def torch_device(cfg: BsaConfig) -> str:
    """ "cuda" when a GPU is there and the config does not ask for the CPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"


def lightning_trainer(cfg: BsaConfig, **kwargs):
    """A ``lightning.Trainer`` with ``cfg.trainer``'s accelerator, devices, nodes, precision and
    logging interval (plus ``kwargs``); sets the process's float32 matmul precision first."""
    import lightning.pytorch as pl
    import torch

    t = cfg.trainer
    torch.set_float32_matmul_precision(t.matmul_precision)
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        precision=t.precision,
        log_every_n_steps=t.log_every_n_steps,
        **kwargs,
    )


def load_denoiser(cfg: BsaConfig, model: str):
    """The Denoiser of ``model`` (a path, ``embedded:<name>``, or an exported stage folder, whose
    ``unet/`` is taken) on the config's schedule and parameterisation."""
    from bsa.models.assets import resolve_model_path
    from bsa.models.denoiser import Denoiser
    from bsa.models.export import is_stage_folder
    from bsa.models.unet import load_unet

    path = resolve_model_path(model)
    unet = load_unet(path / "unet" if is_stage_folder(path) else path)
    return Denoiser(unet, cfg.schedule.build(), cfg.schedule.prediction_type)


def wandb_mode(configured: str) -> str:
    """``auto``: online when the user is logged in (WANDB_API_KEY, or api.wandb.ai in ~/.netrc), else offline.
    An explicit WANDB_MODE in the environment wins over the config."""
    import os
    from pathlib import Path

    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if configured != "auto":
        return configured
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    )
    return "online" if logged_in else "offline"


def wandb_logger(cfg: BsaConfig, run: str, stage):
    """One W&B run per stage, grouped by ``logging.wandb_group`` (a comparison) or the distillation run."""
    import os

    from lightning.pytorch.loggers import WandbLogger

    from bsa.config import to_yaml

    os.environ["WANDB_MODE"] = wandb_mode(cfg.logging.wandb_mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        project=cfg.logging.wandb_project,
        group=cfg.logging.wandb_group or run,
        job_type=f"stage{stage.index}",
        name=f"{run}-s{stage.index}-{stage.student_steps}steps",
        save_dir=str(cfg.paths.output_root),
        config={
            "resolved": to_yaml(cfg),
            "stage": stage.index,
            "student_steps": stage.student_steps,
            "weighting": cfg.distill.weighting,
            "seed": cfg.trainer.seed,
        },
    )
