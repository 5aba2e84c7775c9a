"""Non-finite losses and gradients: skip the step, count it, and stop with a clear error after a
few in a row."""

from __future__ import annotations

import torch


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients were NaN/inf for ``max_consecutive`` optimizer steps in a row."""


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_ranks_agree(ok: bool, device: torch.device) -> bool:
    flag = torch.tensor(float(ok), device=device)
    if _distributed():
        # every rank must take the same decision, or the ranks that step wait forever on the others
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag)


def _all_ranks_agree_on_device(ok: torch.Tensor) -> torch.Tensor:
    """``ok`` (a device bool) and-ed over the DDP ranks without the host waiting on it: NCCL's
    all-reduce is queued on the device like a kernel (gloo's, on the CPU, returns when done). Each
    rank's loss flag is its own until then — a NaN loss with finite gradients on one rank must skip
    the step on every rank, or the ranks' weights part."""
    if _distributed():
        flag = ok.float()
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return flag.bool()
    return ok


class NonFiniteGuard:
    """Mixin for LightningModules: ``return self.guard(loss)`` from ``training_step``.

    A non-finite loss (on any DDP rank: the decision is all-reduced) returns ``None`` — Lightning
    then skips backward and the optimizer step, so the weights (and every checkpoint written so
    far) stay as they were; under DDP, where Lightning refuses a skipped step, backward runs and
    the optimizer step drops its gradients on every rank. A finite loss with non-finite gradients
    (an overflow in backward) is treated the same way: :meth:`on_before_optimizer_step` drops the
    gradients, so the optimizer leaves the weights as they were. Both are counted in
    ``train/nonfinite_skipped``; ``max_consecutive`` in a row raise :class:`NonFiniteLossError`.

    Those two decisions read the device twice a step, and a small model's step waits on each
    (its next launches cannot overlap the GPU's work; under DDP each read is also a collective
    every rank waits at). Where the optimizer can skip a step on the device — one fused
    Adam/AdamW (``found_inf``, as under a gradient scaler), no gradient scaler — the guard decides
    there instead (:meth:`_device_guard`): the step's loss and gradients checked in one flag (under
    DDP and-ed over the ranks on the device) that the optimizer's kernel reads (weights, moments
    and step count untouched on a skipped step), the skips counted on the device and read every
    ``nonfinite_check_every`` optimizer steps and at the last (before the stage's end runs),
    where the count is logged and ``max_consecutive`` in a row raise as above — up to that many
    steps later, the skipped steps having changed nothing.
    """

    max_consecutive_nonfinite: int = 3
    nonfinite_check_every: int = 50
    # None: decided from the trainer (:meth:`_device_guard`); True/False: on the device or the host
    # whatever the trainer (``bsa bench``'s +devguard and +guard steps, which run without one)
    nonfinite_on_device: bool | None = None

    def _skip(self, what: str) -> None:
        self._nonfinite_run = getattr(self, "_nonfinite_run", 0) + 1
        self._nonfinite_total = getattr(self, "_nonfinite_total", 0) + 1
        self.log("train/nonfinite_skipped", float(self._nonfinite_total))
        if self._nonfinite_run >= self.max_consecutive_nonfinite:
            self._stop(what, self._nonfinite_run)

    def _stop(self, what: str, run: int) -> None:
        raise NonFiniteLossError(
            f"{what} for {run} steps in a row (global step "
            f"{self.trainer.global_step if self._trainer else '?'}); the run stops here and the last "
            "finite checkpoint is kept. Lower the learning rate or check the data for NaN."
        )

    def _device_guard(self) -> bool:
        """Whether this run's skips are decided on the device: no gradient scaler, one optimizer
        that takes ``found_inf`` (fused Adam/AdamW: every parameter group fused); any number of
        DDP ranks (every rank reads the same and-ed flags and counts, so all decide alike)."""
        if self.nonfinite_on_device is not None:
            return self.nonfinite_on_device
        trainer = self._trainer
        if trainer is None:
            return False
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return False
        optimizers = trainer.optimizers
        return (
            len(optimizers) == 1
            and isinstance(optimizers[0], torch.optim.Adam)
            and all(group.get("fused") for group in optimizers[0].param_groups)
        )

    def guard(self, loss: torch.Tensor) -> torch.Tensor | None:
        if self._device_guard():
            self._loss_finite = torch.isfinite(loss.detach()).all()  # read with the gradients'
            return loss
        if _all_ranks_agree(bool(torch.isfinite(loss.detach()).all()), loss.device):
            return loss
        if not _distributed():
            self._skip(f"loss was {loss.item()}")
            return None  # Lightning skips backward and the optimizer step
        # Lightning refuses a skipped training_step under DDP (every rank's backward takes part in
        # the gradients' all-reduce): backward runs, and the optimizer step does not use its
        # gradients (every rank agreed above, so every rank drops them)
        self._nonfinite_loss = f"loss was {loss.item()}"
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        nonfinite_loss, self._nonfinite_loss = getattr(self, "_nonfinite_loss", None), None
        trainer = self._trainer
        if trainer is not None and getattr(trainer.precision_plugin, "scaler", None) is not None:
            # fp16: the gradient scaler skips overflowing steps and lowers its scale itself; a
            # non-finite loss under DDP (guard) makes its step one of them
            if nonfinite_loss is not None:
                for p in params:
                    p.grad.fill_(float("nan"))
                self._skip(nonfinite_loss)
            return
        if not params:  # backward was skipped (a non-finite loss, counted by guard)
            return
        if nonfinite_loss is not None:  # AdamW skips parameters without a gradient
            for p in params:
                p.grad = None
            self._skip(nonfinite_loss)
            return
        # a gradient holding a NaN/inf has a NaN/inf norm (accumulated in float64, where finite
        # float32 values cannot overflow): one multi-tensor kernel and one host sync for all
        norms = torch._foreach_norm([p.grad for p in params], 2, dtype=torch.float64)
        finite = torch.isfinite(torch.stack(norms)).all()
        if self._device_guard():
            self._skip_on_device(
                optimizer, _all_ranks_agree_on_device(finite & getattr(self, "_loss_finite", finite))
            )
            return
        if _all_ranks_agree(bool(finite), params[0].device):
            self._nonfinite_run = 0
            return
        for p in params:  # AdamW skips parameters without a gradient: the weights stay as they were
            p.grad = None
        self._skip("the gradients were not finite (the loss was)")

    def _skip_on_device(self, optimizer, finite: torch.Tensor) -> None:
        """The step's flag to the optimizer (``found_inf``: 1 skips the step in its kernel) and the
        skips counted on the device: [steps in a row now, the longest such run since the last
        read, all] (:meth:`read_nonfinite`)."""
        skipped = (~finite).float()
        getattr(optimizer, "_optimizer", optimizer).found_inf = skipped  # a LightningOptimizer wraps it
        counts = getattr(self, "_nonfinite_counts", None)
        if counts is None or counts.device != skipped.device:
            counts = self._nonfinite_counts = torch.zeros(3, device=skipped.device)
        run = (counts[0] + skipped) * skipped
        self._nonfinite_counts = torch.stack([run, torch.maximum(counts[1], run), counts[2] + skipped])
        self._unread_steps = getattr(self, "_unread_steps", 0) + 1
        trainer = self._trainer
        last = trainer is not None and 0 < trainer.max_steps <= trainer.global_step + 1
        if self._unread_steps >= self.nonfinite_check_every or last:  # the last: before the stage ends
            self.read_nonfinite()

    def read_nonfinite(self, log: bool = True) -> None:
        """The device's skip counts read on the host (one sync): ``train/nonfinite_skipped`` logged
        when there were skips, :class:`NonFiniteLossError` when ``max_consecutive`` came in a row."""
        counts = getattr(self, "_nonfinite_counts", None)
        self._unread_steps = 0
        if counts is None:
            return
        run, longest, total = (int(c) for c in counts.tolist())
        self._nonfinite_counts = torch.stack([counts[0], counts[0], counts[2]])  # the longest run: anew
        self._nonfinite_run, self._nonfinite_total = run, total
        if total and log:
            self.log("train/nonfinite_skipped", float(total))
        if longest >= self.max_consecutive_nonfinite:
            self._stop("the loss or the gradients were not finite", longest)

    def on_train_end(self) -> None:  # a run stopped before its last step (no logging here)
        if self._device_guard():
            self.read_nonfinite(log=False)
