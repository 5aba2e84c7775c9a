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
    and noise for every weighting and seed, so the profiles of a comparison are paired.

    :meth:`measure` and :meth:`write` are its two halves: a population's stage end
    (:class:`bsa.callbacks.population.MemberStageEnd`) measures every member's profile in one pass
    over the population and writes each through its member's own callback."""

    def __init__(
        self, path: str | Path, identity: dict, clips: int = 64, seed: int = 0, gradients: bool = True
    ):
        self.path, self.identity, self.clips, self.seed = Path(path), identity, clips, seed
        self.gradients = gradients  # also the weighted loss's gradient norm per step

    @property
    def protocol(self) -> tuple:
        """What a measurement depends on besides the module: callbacks of equal protocols measure alike."""
        return self.clips, self.seed, self.gradients

    def measure(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> tuple[int, list[list[dict]]] | None:
        """(the items measured, one profile per student of ``pl_module``); None off rank 0 or without data."""
        if not trainer.is_global_zero or trainer.datamodule is None:
            return None
        batch = next(iter(trainer.datamodule.val_dataloader()))
        latents = batch["latents"][: self.clips].to(pl_module.device)
        text = batch["text_emb"][: self.clips].to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        profiles = pl_module.error_profiles(latents, text, self.seed, grad_clips=16 if self.gradients else 0)
        pl_module.train(was_training)
        return int(latents.shape[0]), profiles

    def write(self, pl_module: pl.LightningModule, clips: int, rows: list[dict]) -> None:
        """One student's record: its measured ``rows`` and ``pl_module``'s training profile."""
        append_jsonl(
            self.path,
            {**self.identity, "clips": clips, "profile": rows, "training": pl_module.training_profile()},
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        measured = self.measure(trainer, pl_module)
        if measured is not None:
            clips, (rows,) = measured
            self.write(pl_module, clips, rows)
