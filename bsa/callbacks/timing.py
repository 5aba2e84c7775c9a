"""The wall time of each training step, for benchmarks (``bsa bench --what ddp``)."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch


class StepTimer(pl.Callback):
    """``seconds``: the wall time of every training step after the first ``warmup``, the device
    synchronised before and after each (so a CUDA step is timed whole; under DDP the gradient
    all-reduce is inside the step)."""

    def __init__(self, warmup: int = 0):
        self.warmup, self.seconds = warmup, []

    def _sync(self, trainer: pl.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        self._sync(trainer)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        self._sync(trainer)
        if trainer.global_step > self.warmup:
            self.seconds.append(time.perf_counter() - self._start)
