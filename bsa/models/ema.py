"""Exponential moving average of parameters (Polyak averaging), kept as a frozen module copy."""

from __future__ import annotations

import copy

import torch


class EMA(torch.nn.Module):
    """θ_ema ← d·θ_ema + (1 − d)·θ after each optimizer step, with the warm-up
    d_k = min(decay, (1 + k)/(10 + k)) so that early averages are not dominated by the init."""

    def __init__(self, model: torch.nn.Module, decay: float):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        k = int(self.num_updates)
        d = min(self.decay, (1 + k) / (10 + k))
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        self.num_updates += 1
