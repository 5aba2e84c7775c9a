"""Non-finite losses and gradients: skip the step, count it, and stop with a clear error after a
few in a row."""

from __future__ import annotations

import torch


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients were NaN/inf for ``max_consecutive`` optimizer steps in a row."""


def _all_ranks_agree(ok: bool, device: torch.device) -> bool:
    flag = torch.tensor(float(ok), device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # every rank must take the same decision, or the ranks that step wait forever on the others
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag)


class NonFiniteGuard:
    """Mixin for LightningModules: ``return self.guard(loss)`` from ``training_step``.

    A non-finite loss (on any DDP rank: the decision is all-reduced) returns ``None`` — Lightning
    then skips backward and the optimizer step, so the weights (and every checkpoint written so
    far) stay as they were. A finite loss with non-finite gradients (an overflow in backward) is
    treated the same way: :meth:`on_before_optimizer_step` drops the gradients, so the optimizer
    leaves the weights as they were. Both are counted in ``train/nonfinite_skipped``;
    ``max_consecutive`` in a row raise :class:`NonFiniteLossError`.
    """

    max_consecutive_nonfinite: int = 3

    def _skip(self, what: str) -> None:
        self._nonfinite_run = getattr(self, "_nonfinite_run", 0) + 1
        self._nonfinite_total = getattr(self, "_nonfinite_total", 0) + 1
        self.log("train/nonfinite_skipped", float(self._nonfinite_total))
        if self._nonfinite_run >= self.max_consecutive_nonfinite:
            raise NonFiniteLossError(
                f"{what} for {self._nonfinite_run} steps in a row (global step "
                f"{self.trainer.global_step if self._trainer else '?'}); the run stops here and the last "
                "finite checkpoint is kept. Lower the learning rate or check the data for NaN."
            )

    def guard(self, loss: torch.Tensor) -> torch.Tensor | None:
        if _all_ranks_agree(bool(torch.isfinite(loss.detach()).all()), loss.device):
            return loss
        self._skip(f"loss was {loss.item()}")
        return None

    def on_before_optimizer_step(self, optimizer) -> None:
        trainer = self._trainer
        if trainer is not None and getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # fp16: the gradient scaler skips overflowing steps and lowers its scale itself
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:  # backward was skipped (a non-finite loss, counted by guard)
            return
        # a gradient holding a NaN/inf has a NaN/inf norm (accumulated in float64, where finite
        # float32 values cannot overflow): one multi-tensor kernel and one host sync for all
        norms = torch._foreach_norm([p.grad for p in params], 2, dtype=torch.float64)
        finite = torch.isfinite(torch.stack(norms)).all()
        if _all_ranks_agree(bool(finite), params[0].device):
            self._nonfinite_run = 0
            return
        for p in params:  # AdamW skips parameters without a gradient: the weights stay as they were
            p.grad = None
        self._skip("the gradients were not finite (the loss was)")
