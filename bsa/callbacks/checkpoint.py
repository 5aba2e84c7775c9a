"""Atomic, resumable checkpoints: ``last.ckpt`` every N optimizer steps, written to a temporary
file and renamed, so a kill at any moment leaves the previous checkpoint intact."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl


class AtomicLastCheckpoint(pl.Callback):
    def __init__(self, folder: str | Path, every_n_steps: int):
        self.folder = Path(folder)
        self.every = max(1, every_n_steps)

    @property
    def path(self) -> Path:
        return self.folder / "last.ckpt"

    def save(self, trainer: pl.Trainer) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".last.ckpt.tmp{os.getpid()}"
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)


class StopAfterSteps(pl.Callback):
    """Ends this invocation after ``steps`` optimizer steps in total across stages (for budgeted,
    pre-emptible jobs: run the same command again to continue)."""

    def __init__(self, steps: int, done_before: int = 0):
        self.steps, self.done_before = steps, done_before
        self.triggered = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self.steps and self.done_before + trainer.global_step - self.start >= self.steps:
            self.triggered = True
            trainer.should_stop = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = trainer.global_step
