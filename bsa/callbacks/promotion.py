"""StagePromotion: at the end of a stage, the student (its EMA if kept) becomes the next teacher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl


class StagePromotion(pl.Callback):
    """Calls ``module.export_teacher()`` when the stage's fit ends with all its steps done, hands
    the result to ``save(denoiser) → folder`` on rank 0 (the stage export, with ``num_sample_steps``,
    the stage and the resolved config), waits for it on every rank, and keeps the promoted teacher
    in ``self.promoted`` for the next stage."""

    def __init__(self, total_steps: int, save: Callable[[object], Path]):
        self.total_steps = total_steps
        self.save = save
        self.promoted = None
        self.folder: Path | None = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step < self.total_steps:
            return  # stopped early (budget, interrupt): nothing to promote yet
        self.promoted = pl_module.export_teacher()
        if trainer.is_global_zero:
            self.folder = self.save(self.promoted)
            for logger in trainer.loggers:  # the promotion itself is logged where the stage's metrics go
                logger.log_metrics(
                    {"promotion/global_step": float(trainer.global_step)}, step=trainer.global_step
                )
                logger.log_hyperparams({"exported_to": str(self.folder)})
        trainer.strategy.barrier("stage-promotion")
