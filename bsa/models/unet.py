"""The latent UNet as AudioLDM uses it: diffusers ``UNet2DConditionModel`` with FiLM text
conditioning — the caption embedding enters through ``class_labels`` (``simple_projection``,
``class_embeddings_concat=True``), no cross-attention context (``encoder_hidden_states=None``).

Guided distillation (Meng et al. 2023) adds a guidance-scale input: diffusers' ``timestep_cond``
(``time_cond_proj_dim``), a projection added to the time embedding — "w embedded like a timestep".
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from bsa.models.identity import load_strict

UNET_SIZES = {"tiny": (8, 16, 16), "embedded": (32, 64, 128), "embedded-large": (64, 128, 256)}


def audioldm_unet_config(
    size: str,
    text_dim: int,
    latent_channels: int = 8,
    sample_size: tuple[int, int] = (64, 16),
    time_cond_proj_dim: int | None = None,
) -> dict:
    """AudioLDM's UNet layout (3 levels, attention at the coarsest, FiLM text conditioning), scaled."""
    if size not in UNET_SIZES:
        raise ValueError(f"unknown UNet size {size!r}; expected one of {sorted(UNET_SIZES)}")
    widths = UNET_SIZES[size]
    return dict(
        sample_size=list(sample_size),
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
        up_block_types=["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
        mid_block_type="UNetMidBlock2DCrossAttn",
        block_out_channels=list(widths),
        layers_per_block=1,
        cross_attention_dim=widths[-1],
        attention_head_dim=min(32, widths[-1]),
        norm_num_groups=8,
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=text_dim,
        class_embeddings_concat=True,
        time_cond_proj_dim=time_cond_proj_dim,
    )


def load_unet(folder: str | Path) -> UNet2DConditionModel:
    """A diffusers UNet folder, strictly: never a download; missing files or weights are errors."""
    folder = Path(folder)
    unet = load_strict(UNet2DConditionModel, folder, "UNet")
    if unet.config.class_embed_type != "simple_projection":
        raise ValueError(
            f"{folder}: not an AudioLDM-style UNet (class_embed_type={unet.config.class_embed_type!r}, "
            "expected 'simple_projection' FiLM text conditioning)"
        )
    return unet


def with_guidance_input(unet: UNet2DConditionModel, embed_dim: int = 256) -> UNet2DConditionModel:
    """A copy of ``unet`` that also takes the guidance scale (``timestep_cond``), with the new
    projection initialised to zero so that the copy starts out computing exactly what ``unet`` does."""
    if unet.config.time_cond_proj_dim is not None:
        raise ValueError("this UNet already takes a guidance input")
    # private keys (e.g. ``_use_default_values``) would make from_config ignore the new entry
    config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
    config["time_cond_proj_dim"] = embed_dim
    new = UNet2DConditionModel.from_config(config)
    missing, unexpected = new.load_state_dict(unet.state_dict(), strict=False)
    if unexpected or any("cond_proj" not in k for k in missing):
        raise RuntimeError(f"guidance copy: unexpected {unexpected}, missing {missing}")
    torch.nn.init.zeros_(new.time_embedding.cond_proj.weight)
    return new.to(next(unet.parameters()).device)


# the UNet's repeated blocks: diffusers' UNet2DConditionModel names only its transformer blocks
REPEATED_BLOCKS = ("BasicTransformerBlock", "ResnetBlock2D")


def compile_repeated_blocks(unet: UNet2DConditionModel, **compile_kwargs) -> None:
    """Regional compilation (the PyTorch recipe "Reducing torch.compile cold start compilation time
    with regional compilation"; diffusers' ``ModelMixin.compile_repeated_blocks``): each
    transformer and resnet block is compiled in place (``nn.Module.compile``), the rest of the
    UNet stays eager. Blocks of one class share their compiled code (dynamo inlines the modules
    and guards on shapes, not on the instance), so the warm-up compiles each block type once per
    shape instead of the whole graph. Parameters and state-dict keys are unchanged."""
    import torch._dynamo

    # Each block may see its own input shape (channels, resolution) at a few batch sizes (training,
    # the teacher's guidance pair, evaluation), and the blocks of a class share one code object:
    # dynamo's default of 8 compilations per code object ran every later shape eager, silently
    # (the 185 M UNet's resnets have more than 8 shapes).
    blocks = sum(type(m).__name__ in REPEATED_BLOCKS for m in unet.modules())
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, 4 * blocks)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 8 * blocks)
    unet._repeated_blocks = list(REPEATED_BLOCKS)  # instance attribute: the class keeps its own
    unet.compile_repeated_blocks(**compile_kwargs)


class AutocastDtypeGroupNorm(torch.nn.GroupNorm):
    """``nn.GroupNorm`` (same parameters and names) computed in its input's dtype under a bf16/fp16
    autocast. CUDA's autocast runs ``group_norm`` in float32 (its float32 list): a bf16 activation
    is read and written back as float32, the SiLU after it runs in float32 and the next convolution
    casts its input to bf16 again — memory-bound traffic around every convolution of a UNet. Here
    the kernel reads and writes bf16; it still accumulates each group's statistics in float32 (torch's
    GroupNorm kernels do for bf16/fp16). Outside autocast, or on a float32 input, it is
    ``nn.GroupNorm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                weight = None if self.weight is None else self.weight.to(x.dtype)
                bias = None if self.bias is None else self.bias.to(x.dtype)
                return torch.nn.functional.group_norm(x, self.num_groups, weight, bias, self.eps)
        return super().forward(x)


def autocast_dtype_group_norms(module: torch.nn.Module) -> int:
    """Makes every ``nn.GroupNorm`` of ``module`` an :class:`AutocastDtypeGroupNorm`, in place (the
    parameters, their names and the state dict unchanged; ``trainer.low_precision_norms``).
    Returns how many."""
    norms = [m for m in module.modules() if type(m) is torch.nn.GroupNorm]
    for m in norms:
        m.__class__ = AutocastDtypeGroupNorm
    return len(norms)
