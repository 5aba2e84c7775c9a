"""Optimizer and LR schedule from explicit arguments (AdamW; warm-up then cosine)."""

from __future__ import annotations

import math

import torch


def adamw(
    params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), fused: bool = False
) -> torch.optim.AdamW:
    """AdamW; ``fused=True`` is one kernel for all parameters (faster on CUDA: docs/results/speed.md, "Sampling
    speed and distillation throughput"), otherwise the multi-tensor (foreach) kernel. Lightning
    refuses to clip the gradients of a fused optimizer under mixed precision: see
    :func:`clip_grad_norm`."""
    params = [p for p in params if p.requires_grad]
    return torch.optim.AdamW(
        params,
        lr=lr,
        weight_decay=weight_decay,
        betas=betas,
        fused=fused or None,
        foreach=None if fused else True,
    )


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, final_ratio: float = 0.1
):
    """Linear warm-up for ``warmup_steps``, then cosine decay to ``final_ratio``·lr at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step"}


def adamw_warmup_cosine(
    params,
    lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    final_ratio: float = 0.1,
    fused: bool = False,
    betas=(0.9, 0.999),
) -> dict:
    """What ``configure_optimizers`` returns: AdamW with the warm-up + cosine schedule, stepped per step."""
    opt = adamw(params, lr, weight_decay, betas=betas, fused=fused)
    return {"optimizer": opt, "lr_scheduler": warmup_cosine(opt, total_steps, warmup_steps, final_ratio)}


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    return bool(optimizer.defaults.get("fused"))


def clip_grad_norm(optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Clip the global gradient norm of ``optimizer``'s parameters to ``max_norm``.

    Lightning's mixed-precision plugin refuses any optimizer that unscales gradients itself (a fused
    one) because under fp16 its gradients are still multiplied by the loss scale when clipping runs.
    Without a gradient scaler (fp32, bf16-mixed) the gradients are the true ones, and clipping them
    directly is what Lightning would do; the caller checks that no scaler is in use."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm)
