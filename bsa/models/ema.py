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
        ema_params, params = list(self.module.parameters()), [p.detach() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError(f"EMA of {len(ema_params)} parameters updated from a model of {len(params)}")
        # one multi-tensor kernel for all parameters (a lerp per parameter was a quarter of a
        # small teacher's training step on the GPU: experiments/gpu/teacher_throughput.py)
        torch._foreach_lerp_(ema_params, params, 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        self.num_updates += 1
