"""Non-finite losses: skip the step, count it, and stop with a clear error after a few in a row."""

from __future__ import annotations

import torch


class NonFiniteLossError(RuntimeError):
    """The loss was NaN/inf for ``max_consecutive`` optimizer steps in a row."""


class NonFiniteGuard:
    """Mixin for LightningModules: ``return self.guard(loss)`` from ``training_step``.

    A non-finite loss (on any DDP rank: the decision is all-reduced) returns ``None`` — Lightning then skips backward and the optimizer step, so
    the weights (and every checkpoint written so far) stay as they were — and is counted in
    ``train/nonfinite_skipped``. ``max_consecutive`` in a row raise :class:`NonFiniteLossError`.
    """

    max_consecutive_nonfinite: int = 3

    def guard(self, loss: torch.Tensor) -> torch.Tensor | None:
        run = getattr(self, "_nonfinite_run", 0)
        total = getattr(self, "_nonfinite_total", 0)
        finite = torch.isfinite(loss.detach()).all().float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank must take the same decision, or the ranks that step wait forever on the others
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if bool(finite):
            self._nonfinite_run = 0
            return loss
        self._nonfinite_run, self._nonfinite_total = run + 1, total + 1
        self.log("train/nonfinite_skipped", float(self._nonfinite_total))
        if self._nonfinite_run >= self.max_consecutive_nonfinite:
            raise NonFiniteLossError(
                f"loss was {loss.item()} for {self._nonfinite_run} steps in a row (global step "
                f"{self.trainer.global_step if self._trainer else '?'}); the run stops here and the last written "
                "checkpoint is kept. Lower the learning rate or check the data for NaN."
            )
        return None
