"""Atomic, resumable checkpoints: ``last.ckpt`` every N optimizer steps and at a SIGTERM, written to
a temporary file, fsynced and renamed, so a kill at any moment leaves the previous checkpoint
intact; weights that are not finite are never written over a finite checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import torch

from bsa.durable import replace_durably


def all_finite(module: torch.nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


class AtomicLastCheckpoint(pl.Callback):
    def __init__(self, folder: str | Path, every_n_steps: int):
        self.folder = Path(folder)
        self.every = max(1, every_n_steps)

    @property
    def path(self) -> Path:
        return self.folder / "last.ckpt"

    def resume_path(self) -> Path | None:
        """The checkpoint to resume from: the newest of ``last.ckpt`` and Lightning's SLURM
        pre-emption checkpoints ``hpc_ckpt_*.ckpt`` (written into this folder, the trainer's
        ``default_root_dir``, when SLURM signals a requeue) — an explicit ``ckpt_path`` would
        otherwise always win over the newer pre-emption checkpoint."""
        candidates = [p for p in (self.path, *self.folder.glob("hpc_ckpt_*.ckpt")) if p.is_file()]
        return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name)) if candidates else None

    def save(self, trainer: pl.Trainer) -> None:
        if not all_finite(trainer.lightning_module):
            return  # keep the last finite checkpoint
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".last.ckpt.tmp{os.getpid()}"
        trainer.save_checkpoint(tmp, weights_only=False)  # the full state: optimizer, loops, callbacks
        if trainer.is_global_zero:
            replace_durably(tmp, self.path)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """A SIGTERM (``timeout``, a batch system's time limit or pre-emption) ends the step under
        way and stops the loop with Lightning's SIGTERMException, at a step boundary: the step
        reached is saved, so the rerun loses nothing. (The data workers are out of reach of the
        SIGTERM that ``timeout`` sends to the whole process group:
        :class:`bsa.data.datamodule.GroupSignalSafeDataLoader`.)"""
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(exception, SIGTERMException):
            return  # anywhere else mid-step the state is not a resumable point: keep the last one
        self.save(trainer)
        if trainer.is_global_zero:
            print(
                f"\nSIGTERM: stopped at step {trainer.global_step}, checkpointed to {self.path}", flush=True
            )


class StopAfterSteps(pl.Callback):
    """Ends this invocation after ``steps`` optimizer steps in total across stages (for budgeted,
    pre-emptible jobs: run the same command again to continue)."""

    def __init__(self, steps: int, done_before: int = 0):
        self.steps, self.done_before = steps, done_before
        self.triggered = False
        self.start: int | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self.steps and self.done_before + trainer.global_step - self.start >= self.steps:
            self.triggered = True
            trainer.should_stop = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = trainer.global_step


class StopAfterMinutes(pl.Callback):
    """Ends this invocation once ``minutes`` of wall time have passed since it started training
    (``train.stop_after_minutes``): the checkpoint written at the end lets the same command continue."""

    def __init__(self, minutes: float):
        import time

        self.minutes, self.clock = minutes, time.monotonic
        self.triggered = False
        self.start = self.clock()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = self.clock()

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self.minutes and self.clock() - self.start >= 60 * self.minutes:
            self.triggered = True
            trainer.should_stop = True
