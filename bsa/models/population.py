"""A population of K UNets of one architecture evaluated as one batched network (``torch.func``).

The weighting study trains K students side by side on the same data, noise and teacher steps; on a
GPU a 3 M UNet leaves most of it idle, and K processes only time-slice it (docs/results/weighting-study.md, "Loss
weightings…": five runs sharing an H200 made ~1.2× the steps of one). Stacking the K members'
parameters and calling the UNet under ``vmap`` turns every layer into one kernel for all K
(convolutions become grouped ones), so a step costs about one member's launches.

``torch.group_norm`` cannot run under ``vmap`` (it queries memory formats: "NYI: querying
is_contiguous inside of vmap"), so the batched skeleton's GroupNorms call torch's kernel through an
operator with a batching rule of its own (:func:`group_norm`). Members keep diffusers' parameter names:
:meth:`Population.member` gives back an ordinary ``UNet2DConditionModel``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


@torch.library.custom_op("bsa::group_norm", mutates_args=())
def _group_norm(
    x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, num_groups: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch's own GroupNorm kernel (``aten.native_group_norm``: the output, each (sample, group)'s
    mean and 1/σ) as an operator of its own, so that it can carry the batching rule below."""
    n, c = x.shape[:2]
    return torch.ops.aten.native_group_norm(
        x.contiguous(), weight, bias, n, c, math.prod(x.shape[2:]), num_groups, eps
    )


@_group_norm.register_fake
def _(x, weight, bias, num_groups, eps):
    n = x.shape[0]
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        x.new_empty(n, num_groups),
        x.new_empty(n, num_groups),
    )


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, num_groups, _ = inputs
    ctx.save_for_backward(x, weight, output[1], output[2])
    ctx.num_groups, ctx.affine = num_groups, (weight is not None, bias is not None)


def _backward(ctx, grad, _grad_mean, _grad_rstd):
    x, weight, mean, rstd = ctx.saved_tensors
    n, c = x.shape[:2]
    gx, gw, gb = torch.ops.aten.native_group_norm_backward(
        grad.contiguous(), x.contiguous(), mean, rstd, weight, n, c, math.prod(x.shape[2:]), ctx.num_groups,
        [True, *ctx.affine],
    )  # fmt: skip
    return gx, gw, gb, None, None


_group_norm.register_autograd(_backward, setup_context=_setup_context)


def _group_norm_batched(info, in_dims, x, weight, bias, num_groups, eps):
    """``vmap``'s rule: K members' GroupNorms are one GroupNorm of K·G groups over their channels
    side by side — x [B, K, C, …] viewed as [B, K·C, …] (no copy when the members' dimension is
    already second, as the batched convolutions leave it), γ and β [K, C] as [K·C]."""
    k, (x_dim, w_dim, b_dim) = info.batch_size, in_dims[:3]
    x = x.movedim(x_dim, 1) if x_dim is not None else x.unsqueeze(1).expand(x.shape[0], k, *x.shape[1:])
    b, c = x.shape[0], x.shape[2]

    def per_channel(p, dim):
        return None if p is None else p.movedim(dim, 0).reshape(k * c) if dim is not None else p.repeat(k)

    y, mean, rstd = _group_norm(
        x.reshape(b, k * c, *x.shape[3:]),
        per_channel(weight, w_dim),
        per_channel(bias, b_dim),
        k * num_groups,
        eps,
    )
    return (y.reshape(x.shape), mean.reshape(b, k, num_groups), rstd.reshape(b, k, num_groups)), (1, 1, 1)


_group_norm.register_vmap(_group_norm_batched)


def group_norm(x: torch.Tensor, num_groups: int, weight, bias, eps: float) -> torch.Tensor:
    """GroupNorm (Wu & He 2018, eq. 1–3 with per-channel affine), computed by torch's own kernel, in
    a form ``vmap`` can batch: ``torch.group_norm`` cannot run under it ("NYI: querying
    is_contiguous inside of vmap"), this operator has a batching rule that makes K members' norms
    one call of that kernel (forward and backward: exactly ``torch.nn.GroupNorm``'s arithmetic).
    Written out of reductions, as before 2026-11-29, each GroupNorm was ~6 element-wise kernels each
    way, a population step's largest cost; as a batch norm of a reshaped view, one kernel and two
    layout copies; this operator made the 17-student step 1.13× faster than the batch norm
    (results/bench/2026-11-29-population-speed/groupnorm-operator). Under CUDA autocast it runs in
    float32, as CUDA autocast runs ``torch.group_norm`` (it does not know this operator; the CPU's
    runs GroupNorm in the input's dtype, and so does this)."""
    if x.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        with torch.autocast("cuda", enabled=False):
            weight, bias = (None if p is None else p.float() for p in (weight, bias))
            return _group_norm(x.float(), weight, bias, num_groups, eps)[0]
    return _group_norm(x, weight, bias, num_groups, eps)[0]


class BatchableGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` with the same parameters, computed by :func:`group_norm`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_norm(x, self.num_groups, self.weight if self.affine else None, self.bias, self.eps)


def batchable(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose GroupNorms are :class:`BatchableGroupNorm` (same names) and
    whose attention (a diffusers model's, or one's inside it) is computed by matmuls
    (``AttnProcessor``): torch has no ``vmap`` rule for the fused attention kernels and would loop
    over the members there."""
    module = copy.deepcopy(module)
    for m in module.modules():
        if type(m) is nn.GroupNorm:
            m.__class__ = BatchableGroupNorm
        elif hasattr(m, "set_attn_processor"):  # the UNet, or the UNet inside a denoiser
            from diffusers.models.attention_processor import AttnProcessor

            m.set_attn_processor(AttnProcessor())
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
