"""A population of K UNets of one architecture evaluated as one batched network (``torch.func``).

The weighting study trains K students side by side on the same data, noise and teacher steps; on a
GPU a 3 M UNet leaves most of it idle, and K processes only time-slice it (README, "Loss
weightings…": five runs sharing an H200 made ~1.2× the steps of one). Stacking the K members'
parameters and calling the UNet under ``vmap`` turns every layer into one kernel for all K
(convolutions become grouped ones), so a step costs about one member's launches.

``torch.group_norm`` cannot run under ``vmap`` (it queries memory formats: "NYI: querying
is_contiguous inside of vmap"), so the batched skeleton's GroupNorms compute the same normalisation
as a batch norm of a reshaped view (:func:`group_norm`). Members keep diffusers' parameter names:
:meth:`Population.member` gives back an ordinary ``UNet2DConditionModel``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F


def group_norm(x: torch.Tensor, num_groups: int, weight, bias, eps: float) -> torch.Tensor:
    """GroupNorm (Wu & He 2018, eq. 1–3 with per-channel affine) in a form ``vmap`` can batch:
    (x − μ_g) / √(σ²_g + ε) · γ_c + β_c over each group's channels and positions, biased variance
    as ``torch.nn.GroupNorm``. The normalisation is a batch norm without running statistics over
    x viewed as [1, N·G, C/G·…] — its channels are the (sample, group) pairs, so it takes each
    group's mean and biased variance — which ``vmap`` batches into one fused kernel (its members
    become more channels), forward and backward; the affine is one ``addcmul``. Written out of
    reductions instead, each GroupNorm was ~6 element-wise kernels each way, a population step's
    largest cost (results/bench/2026-11-29-population-speed)."""
    n, c = x.shape[:2]
    y = F.batch_norm(x.reshape(1, n * num_groups, -1), None, None, training=True, eps=eps).reshape(x.shape)
    if weight is None:
        return y
    shape = (1, c) + (1,) * (x.dim() - 2)
    return torch.addcmul(bias.reshape(shape), y, weight.reshape(shape))


class BatchableGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` with the same parameters, computed by :func:`group_norm`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_norm(x, self.num_groups, self.weight if self.affine else None, self.bias, self.eps)


def batchable(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose GroupNorms are :class:`BatchableGroupNorm` (same names) and
    whose attention (a diffusers model's) is computed by matmuls (``AttnProcessor``): torch has no
    ``vmap`` rule for the fused attention kernels and would loop over the members there."""
    module = copy.deepcopy(module)
    for m in module.modules():
        if type(m) is nn.GroupNorm:
            m.__class__ = BatchableGroupNorm
    if hasattr(module, "set_attn_processor"):
        from diffusers.models.attention_processor import AttnProcessor

        module.set_attn_processor(AttnProcessor())
    return module


class Population(nn.Module):
    """K members of one architecture: their parameters stacked along a leading dimension K (one
    ``nn.Parameter`` per tensor, so one optimizer updates all members, each by its own gradient),
    called together by ``vmap`` over a batchable skeleton of the architecture."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("a population needs at least one member")
        params, buffers = stack_module_state(members)  # new stacked tensors: no copy needed
        self.names = list(params)
        # "." is not allowed in parameter names: keep diffusers' names in a mapping
        self.stacked = nn.ParameterList([nn.Parameter(params[n].detach()) for n in self.names])
        self.buffer_names = list(buffers)
        for i, n in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{i}", buffers[n])
        skeleton = batchable(members[0])
        self._skeleton = [skeleton.to("meta")]  # a list: not a submodule (no parameters of its own)

    def _state(self):
        params = dict(zip(self.names, self.stacked, strict=True))
        buffers = {n: getattr(self, f"buffer{i}") for i, n in enumerate(self.buffer_names)}
        return params, buffers

    def forward(self, *args, in_dims=None, **kwargs):
        """Every member called on ``args``: outputs stacked [K, ...]. ``in_dims``: per positional
        argument, 0 where it holds one input per member (leading K), None where all share it."""
        skeleton = self._skeleton[0]
        in_dims = tuple(in_dims) if in_dims is not None else (None,) * len(args)
        keys = list(kwargs)

        def call(params, buffers, *inputs):
            positional, named = inputs[: len(args)], dict(zip(keys, inputs[len(args) :], strict=True))
            return functional_call(skeleton, (params, buffers), positional, named)

        params, buffers = self._state()
        return vmap(call, in_dims=(0, 0, *in_dims, *(None,) * len(keys)))(
            params, buffers, *args, *kwargs.values()
        )

    def member(self, k: int, template: nn.Module) -> nn.Module:
        """Member ``k`` as an ordinary module: a copy of ``template`` with its parameters, trainable
        where the population's are (the template may be a frozen teacher's copy)."""
        module = copy.deepcopy(template)
        params, buffers = self._state()
        module.load_state_dict(
            {**{n: p[k].detach() for n, p in params.items()}, **{n: b[k] for n, b in buffers.items()}}
        )
        for name, p in module.named_parameters():
            p.requires_grad_(params[name].requires_grad)
        return module


class PopulationUNet(nn.Module):
    """K diffusers UNets of one architecture called like one: ``unet(z, t, **conditioning).sample``
    is [K, B, …], member k's output in row k. ``z`` [B, …] is shared by every member (a stage's
    noised latents); ``z`` [K, B, …] gives each member its own (the second of a population of
    teachers' two DDIM steps). Everything else is shared. What :class:`bsa.models.denoiser.Denoiser`
    needs of a UNet (``config``, the call) is here, so a population of K students or teachers is a
    ``Denoiser(PopulationUNet(unets), …)`` and the distillation code runs on it unchanged."""

    def __init__(self, unets: list[nn.Module]):
        super().__init__()
        self.population = Population(unets)
        self.config = unets[0].config
        self._template = [copy.deepcopy(unets[0]).cpu()]  # a list: not a submodule (member's skeleton)

    @property
    def members(self) -> int:
        return int(self.population.stacked[0].shape[0])

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, **conditioning):
        per_member = sample.dim() == 5
        return self.population(sample, timestep, in_dims=(0 if per_member else None, None), **conditioning)

    def member(self, k: int) -> nn.Module:
        """Member ``k`` as an ordinary UNet (its own copy of the parameters, on their device)."""
        device = self.population.stacked[0].device
        return self.population.member(k, self._template[0]).to(device)
