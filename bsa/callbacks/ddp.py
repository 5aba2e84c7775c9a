"""What DDP adds to a training: how its gradient buckets travel between the ranks
(``trainer.ddp_comm_hook``), and a SIGTERM that stops every rank at the same step."""

from __future__ import annotations

import signal
import threading

import lightning.pytorch as pl
import torch

from bsa.config import DIAGNOSTIC_COMM_HOOKS


class CommHook(pl.Callback):
    """Registers torch's ``bf16`` or ``fp16`` compression hook on the DDP-wrapped module when the
    fit starts, before its first backward: each gradient bucket all-reduced in half precision. Here
    rather than through Lightning's ``DDPStrategy(ddp_comm_hook=…)``, which registers it on CUDA
    devices only (a limit of torch 1.8 that gloo no longer has): a CPU run would all-reduce in
    float32 while its config said otherwise. ``noop`` (:data:`DIAGNOSTIC_COMM_HOOKS`): torch's
    debugging hook that exchanges nothing."""

    def __init__(self, name: str):
        from torch.distributed.algorithms.ddp_comm_hooks import debugging_hooks, default_hooks

        self.name = name
        if name in DIAGNOSTIC_COMM_HOOKS:
            self.hook = getattr(debugging_hooks, f"{name}_hook")  # noop_hook
        else:
            self.hook = getattr(default_hooks, f"{name}_compress_hook")  # bf16_…, fp16_…

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from torch.nn.parallel import DistributedDataParallel

        model = trainer.strategy.model
        if not isinstance(model, DistributedDataParallel):
            raise RuntimeError(
                f"trainer.ddp_comm_hook={self.name}: the training is not DDP-wrapped "
                f"({type(model).__name__}), so its gradients would not be compressed"
            )
        model.register_comm_hook(None, self.hook)


class AgreedSigterm(pl.Callback):
    """A SIGTERM stops every DDP rank at the end of the same step, saved as on one process.

    Lightning's own SIGTERM handler runs a collective inside the handler (a broadcast each time it
    runs) and forwards the signal to the ranks it launched, which then run it again; and each rank
    stops at the end of the step in which it noticed the signal, whatever the others noticed. With
    the signal sent to the whole process group (``timeout``, ``kill -- -PGID``, a batch system's
    time limit) the ranks' collectives fell out of step and the run hung until it was killed,
    losing the steps since its last periodic checkpoint. Here the handler only notes the signal;
    after each training step the ranks all-reduce what they noted (one tiny collective, as
    Lightning's own per-step check is), and where any rank got it every rank stops there through
    Lightning's own path (its SIGTERMException at the step's end: the step reached is checkpointed
    by :class:`~bsa.callbacks.checkpoint.AtomicLastCheckpoint`, the command exits 143). The
    handler is replaced when training starts (after Lightning registers its own) and restored
    with Lightning's at the end."""

    def __init__(self) -> None:
        self.noted = False

    def _note(self, signum, frame) -> None:
        self.noted = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.noted = False
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._note)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        flag = torch.tensor([float(self.noted)], device=pl_module.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item():
            trainer._signal_connector.received_sigterm = True  # Lightning stops at the step's end
