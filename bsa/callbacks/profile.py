"""At the end of a stage, the student's distillation error per noise level (``profiles.jsonl``)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from bsa.durable import append_jsonl


class ErrorProfile(pl.Callback):
    """Appends ``{identity…, "profile": [per student step: t, SNR, weight, x-MSE, ε-MSE, share of
    the weighted loss], "training": [per noise level: the mean weighted loss over the stage's
    training and its share]}`` to ``path`` when the stage's training ends (global rank 0), measured on
    the first validation batch (at most ``clips`` items) with a fixed noise draw — the same latents
    and noise for every weighting and seed, so the profiles of a comparison are paired."""

    def __init__(
        self, path: str | Path, identity: dict, clips: int = 64, seed: int = 0, gradients: bool = True
    ):
        self.path, self.identity, self.clips, self.seed = Path(path), identity, clips, seed
        self.gradients = gradients  # also the weighted loss's gradient norm per step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        batch = next(iter(trainer.datamodule.val_dataloader()))
        latents = batch["latents"][: self.clips].to(pl_module.device)
        text = batch["text_emb"][: self.clips].to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        rows = pl_module.error_profile(latents, text, self.seed, grad_clips=16 if self.gradients else 0)
        pl_module.train(was_training)
        append_jsonl(
            self.path,
            {
                **self.identity,
                "clips": int(latents.shape[0]),
                "profile": rows,
                "training": pl_module.training_profile(),
            },
        )
