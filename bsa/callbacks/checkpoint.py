"""Atomic, resumable checkpoints: ``last.ckpt`` every N optimizer steps and at a SIGTERM, written to
a temporary file, fsynced and renamed, so a kill at any moment leaves the previous checkpoint
intact; weights that are not finite are never written over a finite checkpoint. The periodic
``last.ckpt`` is written in a thread beside the training (Lightning's ``AsyncCheckpointIO``: the
state is copied to the host at the step and written while the next steps train): a population's
checkpoint of 17 students is ~1 GB, 2.5–4 s of stalled training each time it was written in line
(the seed-5 block's progress bars, 2026-12-07)."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from lightning_utilities.core.apply_func import apply_to_collection

from bsa.durable import replace_durably, temporary_path


class DurableCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` of a checkpoint into a temporary beside ``path``, then
    :func:`bsa.durable.replace_durably`: the previous file stays whole until the new one is."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        super().save_checkpoint(checkpoint, tmp, storage_options)
        replace_durably(tmp, path)


def _to_host(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu()  # a device tensor copied; a host one as it is (the writer clones it)


class BackgroundCheckpointIO(AsyncCheckpointIO):
    """Lightning's ``AsyncCheckpointIO`` for the file ``background`` alone (the periodic
    ``last.ckpt``), its state first copied to the host by the caller: the writer thread makes no
    CUDA call, since a CUDA-graph capture in the main thread (a stage's first steps, a scoring's
    sampling, captured in torch's "global" mode) forbids every other thread's copies; the caller
    pays the device-to-host copy, the thread the serialising, writing and fsyncing. Any other save
    through the trainer — Lightning's SLURM pre-emption checkpoint where its own requeue handler
    runs (bsa's saves ``last.ckpt``: ``bsa.callbacks.signals``), a user's ``trainer.save_checkpoint`` — waits for the queued
    writes, then is on disk when the call returns, as before."""

    def __init__(self, checkpoint_io, background: Path):
        super().__init__(checkpoint_io)
        self.background = Path(background)

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if Path(path) == self.background:
            host = apply_to_collection(checkpoint, torch.Tensor, _to_host)
            return super().save_checkpoint(host, path, storage_options)
        self.teardown()  # the queued writes first (and their errors)
        self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options)


def writes_durably(io) -> bool:
    """Whether a strategy's checkpoint IO is a :class:`DurableCheckpointIO` (or wraps one)."""
    while io is not None:
        if isinstance(io, DurableCheckpointIO):
            return True
        io = getattr(io, "checkpoint_io", None)
    return False


def all_finite(module: torch.nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


class AtomicLastCheckpoint(pl.Callback):
    """``last.ckpt`` in ``folder`` every ``every_n_steps`` optimizer steps, at the end of the
    training and at a SIGTERM, through a :class:`DurableCheckpointIO` that the trainer's strategy
    gets at set-up — in a writer thread when ``background`` (:class:`BackgroundCheckpointIO`:
    writes in the order of the saves, each of the state at its step; the trainer's teardown waits
    for them, and a SIGTERM's save is waited for before the run reports it; a failed write raises
    at the next save or at the teardown)."""

    def __init__(self, folder: str | Path, every_n_steps: int, background: bool = True):
        self.folder = Path(folder)
        self.every = max(1, every_n_steps)
        self.background = background
        self.saved_step: int | None = None  # the optimizer step of this process's last save
        self.saves, self.save_seconds = 0, 0.0  # this process's saves and the training's seconds in them

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not writes_durably(trainer.strategy.checkpoint_io):
            io = DurableCheckpointIO()
            trainer.strategy.checkpoint_io = BackgroundCheckpointIO(io, self.path) if self.background else io

    def wait(self, trainer: pl.Trainer) -> None:
        """Until every checkpoint handed to the writer is on disk (raises a write's error)."""
        io = trainer.strategy.checkpoint_io
        if isinstance(io, AsyncCheckpointIO):
            io.teardown()  # finishes the queue; the next save starts a new writer

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
        if not writes_durably(trainer.strategy.checkpoint_io):
            raise RuntimeError(f"{self.path}: the trainer's checkpoint IO was replaced after set-up")
        start = time.perf_counter()
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state: optimizer, loops, callbacks
        self.save_seconds += time.perf_counter() - start
        self.saves += 1
        self.saved_step = trainer.global_step

    def summary(self) -> str:
        """``4 checkpoints (1.2 s of the training's)``: this process's saves and the seconds the
        training waited in them (with the writer thread: the copies to the host; in line: all)."""
        return (
            f"{self.saves} checkpoint{'s' * (self.saves != 1)} ({self.save_seconds:.1f} s of the training's)"
        )

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a stage whose steps are a multiple of every_n_steps was saved at its last step already
        # (a population's: another ~1 GB written beside its members' exports, for nothing)
        if self.saved_step != trainer.global_step:
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
        self.wait(trainer)
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
