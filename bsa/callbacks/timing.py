"""Wall times: of each training step, for benchmarks (``bsa bench --what ddp``), and of a piece of
work's parts (``Laps``: a scoring's record, a run's set-up line)."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch


class StepTimer(pl.Callback):
    """``seconds``: the wall time of every training step after the first ``warmup``, the device
    synchronised before and after each (so a CUDA step is timed whole; under DDP the gradient
    all-reduce is inside the step). ``comm_hook``: the communication hook DDP itself reports
    registered on the timed module (its logging data), None without DDP or without a hook."""

    def __init__(self, warmup: int = 0):
        self.warmup, self.seconds, self.comm_hook = warmup, [], None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logging_data = getattr(trainer.strategy.model, "_get_ddp_logging_data", dict)()
        self.comm_hook = logging_data.get("comm_hook") or None

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


class Laps:
    """Wall seconds of a piece of work's parts, each from the end of the one before (or the start):
    ``laps(part)`` adds them to ``seconds[prefix + part]`` — the caller's dict where given, so that
    several passes add up (a population's members' set-ups), rounded to 0.1 ms. On ``"cuda"`` the
    device's queue is drained at each lap, so a part is charged its own kernels."""

    def __init__(self, device: str = "cpu", seconds: dict | None = None, prefix: str = ""):
        self.device, self.prefix = device, prefix
        self.seconds = {} if seconds is None else seconds
        self._sync()
        self._last = time.perf_counter()

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def __call__(self, part: str) -> None:
        self._sync()
        now = time.perf_counter()
        key = self.prefix + part
        self.seconds[key] = round(self.seconds.get(key, 0.0) + now - self._last, 4)
        self._last = now


def format_laps(seconds: dict) -> str:
    """``data module 8.1 s, teacher 0.4 s, …`` in the order the parts came."""
    return ", ".join(f"{part} {s:.1f} s" for part, s in seconds.items())
