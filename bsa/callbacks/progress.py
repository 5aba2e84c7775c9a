"""One progress bar per stage: "stage k/K (what)", optimizer step of the stage's total, loss, samples/s.

Lightning's bar counts batches of an epoch; a stage is measured in optimizer steps of an endless
stream, so its bar read "Epoch 0/-2" with a truncated ``v_num``.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import _update_n


def refresh_rate_for(total_steps: int, interactive: bool) -> int:
    """Optimizer steps between bar updates: every step on a terminal; in a log file (SLURM,
    nohup, the device machine: no TTY, where every update is another line-less ``\\r`` record)
    about 20 per stage."""
    return 1 if interactive else max(1, total_steps // 20)


class StageProgressBar(TQDMProgressBar):
    def __init__(self, label: str, samples_per_step: int, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self.label, self.samples_per_step = label, samples_per_step

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._set_up(trainer)  # a stage resumed mid-epoch gets no on_train_epoch_start

    def on_train_epoch_start(self, trainer, *_) -> None:
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self._set_up(trainer)

    def _set_up(self, trainer) -> None:
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = trainer.global_step  # a resumed stage continues where it stopped
        bar.n = trainer.global_step
        bar.unit = "step"
        bar.set_description(self.label)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        bar = self.train_progress_bar
        n = trainer.global_step
        if bar is not None and self._should_update(n, bar.total):
            _update_n(bar, n)
            bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer, pl_module) -> dict:
        items = {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}
        bar = self.train_progress_bar
        if bar is not None:
            f = bar.format_dict
            if f["elapsed"] > 0 and f["n"] > f["initial"]:
                items["samples/s"] = f"{(f['n'] - f['initial']) / f['elapsed'] * self.samples_per_step:.0f}"
        return items
