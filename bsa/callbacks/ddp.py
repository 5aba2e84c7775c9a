"""How DDP's gradient buckets travel between the ranks (``trainer.ddp_comm_hook``)."""

from __future__ import annotations

import lightning.pytorch as pl

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
