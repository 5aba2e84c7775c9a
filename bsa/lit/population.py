"""PopulationDistillationModule: K students of one stage, each with its own loss weighting, trained
as one network (issue "A weighting study that can tell weightings apart").

A weighting study trains the same stage K times, once per weighting, from the same teacher on the
same data. On a GPU a 3 M UNet leaves most of it idle and K processes only time-slice it; here the
K students are one :class:`bsa.models.population.PopulationUNet` (stacked parameters, ``vmap``), so
a step costs about one member's launches. Every member sees the same batches and the same draws
(t, ε, s) — the comparison is paired by construction — and member k's training is the one a
:class:`DistillationModule` with its weighting would do on those draws:
* the loss is Σ_k mean_B w_k(SNR)·‖x̃_k − x̂_k‖² (a sum, so member k's gradient is its own loss's);
* gradients are clipped per member (a global norm would couple them);
* AdamW, its learning-rate schedule and the EMA act element-wise on the stacked parameters.
The teacher is one shared denoiser (the first progressive stage: the guided student every member
starts from) or a population of K (later stages: member k's own previous student).
:meth:`member` materialises member k as that ordinary module — export, evaluation and the
per-noise-level profile run on it exactly as for a run of its own.
"""

from __future__ import annotations

import torch

from bsa.diffusion import get_weighting
from bsa.lit.distill import DistillationModule
from bsa.models.denoiser import Denoiser
from bsa.models.population import PopulationUNet


def clip_grad_norm_per_member(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each member's gradient norm to ``max_norm``, as ``torch.nn.utils.clip_grad_norm_`` clips
    one model's: coefficient min(1, max_norm / (‖g_k‖₂ + 1e-6)) on every parameter of member k
    (leading dimension K of each stacked parameter). Returns the K norms before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    norms = torch.stack([g.detach().float().flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype).view(-1, *(1,) * (g.dim() - 1)))
    return norms


class PopulationDistillationModule(DistillationModule):
    """A progressive stage for K weightings at once. ``student``: a ``Denoiser`` of a
    :class:`PopulationUNet`; ``teacher``: a plain ``Denoiser`` shared by all, or one of a
    ``PopulationUNet`` of K; ``weightings``: per member ``{"weighting": name, "weighting_kwargs":
    {…}}``. The other arguments are :class:`DistillationModule`'s."""

    def __init__(
        self,
        teacher: Denoiser,
        student: Denoiser,
        null_text_emb: torch.Tensor,
        *,
        weightings: list[dict],
        **kwargs,
    ):
        if not isinstance(student.unet, PopulationUNet):
            raise TypeError("a population's student is a Denoiser of a PopulationUNet")
        k = student.unet.members
        if len(weightings) != k:
            raise ValueError(f"{len(weightings)} weightings for a population of {k} students")
        if isinstance(teacher.unet, PopulationUNet) and teacher.unet.members != k:
            raise ValueError(f"a population of {teacher.unet.members} teachers for {k} students")
        if kwargs.get("mode") != "progressive" or not student.takes_guidance:
            raise ValueError(
                "a population trains progressive stages of w-conditioned students (from a guided stage)"
            )
        first = weightings[0]
        super().__init__(
            teacher,
            student,
            null_text_emb,
            weighting=first["weighting"],
            weighting_kwargs=first.get("weighting_kwargs") or {},
            **kwargs,
        )
        self.weightings = [dict(w) for w in weightings]
        self.weight_fns = [
            get_weighting(w["weighting"], **(w.get("weighting_kwargs") or {})) for w in weightings
        ]

    @property
    def members(self) -> int:
        return len(self.weight_fns)

    def loss_weight(self, snr: torch.Tensor) -> torch.Tensor:
        return torch.stack([fn(snr) for fn in self.weight_fns])  # [K, B]

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if gradient_clip_val:
            if gradient_clip_algorithm not in (None, "norm") or self._gradient_scaler_in_use():
                raise ValueError(
                    "a population clips each member's gradient norm (no fp16 scaler, no 'value')"
                )
            params = [p for group in optimizer.param_groups for p in group["params"]]
            clip_grad_norm_per_member(params, gradient_clip_val)

    def member(self, k: int) -> DistillationModule:
        """Member ``k`` as the :class:`DistillationModule` a run of its weighting would hold now: its
        teacher, its live student, its EMA and its per-noise-level loss sums (eager: no graphs)."""
        teacher = self.teacher
        if isinstance(teacher.unet, PopulationUNet):
            teacher = Denoiser(teacher.unet.member(k), teacher.schedule, teacher.prediction_type)
        student = Denoiser(self.student.unet.member(k), self.student.schedule, self.student.prediction_type)
        # the stage's arguments as the population got them, but member k's weighting, run eagerly
        eager = ("weighting", "weighting_kwargs", "weightings", "compile", "compile_regions", "cuda_graphs")
        arguments = {key: value for key, value in self.hparams.items() if key not in eager}
        module = DistillationModule(
            teacher,
            student,
            self.null_text_emb,
            weighting=self.weightings[k]["weighting"],
            weighting_kwargs=self.weightings[k].get("weighting_kwargs") or {},
            **arguments,
        ).to(self.device)
        if self.ema is not None:
            module.ema.module.unet.load_state_dict(self.ema.module.unet.member(k).state_dict())
            module.ema.num_updates.copy_(self.ema.num_updates)
        sums = self.level_sums()
        if sums is not None:
            module._level_sums = sums[:, k].clone()
        return module
