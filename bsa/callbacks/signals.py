"""Signals that stop or requeue a training, acted on at the end of an optimizer step.

A signal handler runs wherever the signal lands: inside an optimizer step (the weights updated,
the step not yet counted, the EMA not yet following), inside a collective. Lightning's own
handlers act there — its SLURM requeue handler saves a checkpoint inside the handler (a state no
run passes through: the requeued job applied that update twice), and under DDP its SIGTERM handler
runs a broadcast inside the handler and forwards the signal to the ranks it launched, so with the
signal sent to every process (``timeout``, ``kill -- -PGID``, a batch system) the ranks'
collectives fell out of step and the run hung. Here the handlers only note the signal; after each
optimizer step the ranks agree on what was noted (one all-reduce under DDP) and act there alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import lightning.pytorch as pl
import torch


def slurm_job_id() -> str | None:
    """The job to requeue: ``<array job>_<task>`` for an array task, else ``SLURM_JOB_ID``."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array is not None:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


# what the handlers noted, for the whole process: a requeue signal that lands between stages (an
# export, an evaluation) is acted on at the next stage's first step end
NOTED = {"stop": False, "requeue": False, "requeued": False}


def _note(what: str):
    def note(signum, frame) -> None:
        NOTED[what] = True

    return note


class StepEndSignals(pl.Callback):
    """SIGTERM (``sigterm``: under DDP; one process keeps Lightning's own handling, which stops
    it at the step's end) and SLURM's requeue signal (``requeue_signal``, e.g. SIGUSR1 of
    ``#SBATCH --signal=SIGUSR1@90``; None: not a SLURM job) noted by their handlers and acted on
    at the end of the optimizer step in which any rank noted them:

    - the requeue signal: the step reached saved (the trainer's
      :class:`~bsa.callbacks.checkpoint.AtomicLastCheckpoint`, waited for), then rank 0 runs
      ``scontrol requeue <job>``, once; the training goes on until SLURM stops the job;
    - SIGTERM: every rank stops there through Lightning's own path (its SIGTERMException at the
      step's end: the step reached is checkpointed, the command exits 143).

    The requeue handler is installed for the rest of the process when the callback is made (its
    default action would end the process: a warning that lands between stages is kept for the
    next stage); the SIGTERM handler when training starts, replacing Lightning's, which Lightning's
    teardown replaces by the previous one again."""

    def __init__(self, sigterm: bool, requeue_signal: int | None = None) -> None:
        self.sigterm, self.requeue_signal = sigterm, requeue_signal
        if requeue_signal is not None and threading.current_thread() is threading.main_thread():
            signal.signal(requeue_signal, _note("requeue"))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        NOTED["stop"] = False
        if self.sigterm and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _note("stop"))

    @staticmethod
    def agreed(pl_module: pl.LightningModule) -> tuple[bool, bool]:
        """(stop, requeue): noted by any rank (one all-reduce under DDP, read on the host)."""
        stop, requeue = NOTED["stop"], NOTED["requeue"] and not NOTED["requeued"]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flags = torch.tensor([float(stop), float(requeue)], device=pl_module.device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            stop, requeue = (bool(f) for f in flags.tolist())
        return stop, requeue

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        stop, requeue = self.agreed(pl_module)
        if requeue:
            NOTED["requeued"] = True
            self._save_and_requeue(trainer)
        if stop:
            trainer._signal_connector.received_sigterm = True  # Lightning stops at the step's end

    def _save_and_requeue(self, trainer: pl.Trainer) -> None:
        from bsa.callbacks.checkpoint import AtomicLastCheckpoint

        for checkpoint in (c for c in trainer.callbacks if isinstance(c, AtomicLastCheckpoint)):
            checkpoint.save(trainer)
            checkpoint.wait(trainer)
        trainer.strategy.barrier("requeue")  # every rank's part on disk before the job is requeued
        job = slurm_job_id()
        if not trainer.is_global_zero or job is None:
            return
        try:
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            failure = done.stderr.strip() if done.returncode else None
        except OSError as e:  # no scontrol here: the training goes on, its checkpoint saved
            failure = str(e)
        if failure is None:
            print(f"\nSLURM: saved step {trainer.global_step} and requeued job {job}", flush=True)
        else:
            print(
                f"\nSLURM: saved step {trainer.global_step}; requeuing job {job} failed: {failure}",
                flush=True,
            )
