"""One calling convention for a denoiser: ``denoiser(z_t, t, text_emb, guidance=None) → x̂``.

The network's own parameterisation (ε for AudioLDM) is converted to x̂ here and nowhere else.
"""

from __future__ import annotations

import math

import torch

from bsa.diffusion import NoiseSchedule, x_from_prediction


def guidance_embedding(scale: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """Sinusoidal embedding of the guidance scale s [B] → [B, dim] (like a timestep embedding,
    Meng et al. 2023 §4; the scale is multiplied by 1000 so that 0…10 spans the frequencies)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=scale.device, dtype=torch.float32) / half
    )
    args = scale.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class Denoiser(torch.nn.Module):
    """Wraps an AudioLDM-style ``UNet2DConditionModel`` into x̂(z_t, t, text[, guidance scale])."""

    def __init__(self, unet: torch.nn.Module, schedule: NoiseSchedule, prediction_type: str = "epsilon"):
        super().__init__()
        self.unet = unet
        self.schedule = schedule
        self.prediction_type = prediction_type

    @property
    def takes_guidance(self) -> bool:
        return self.unet.config.time_cond_proj_dim is not None

    def network(
        self, z_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor, guidance: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The raw network output (its own parameterisation)."""
        cond = None
        if guidance is not None:
            if not self.takes_guidance:
                raise ValueError("this denoiser has no guidance input (it was not guidance-distilled)")
            # z_t [B, C, T', F'], or [K, B, …] for a population's per-member inputs: one scale per example
            cond = guidance_embedding(guidance.expand(z_t.shape[-4]), self.unet.config.time_cond_proj_dim).to(
                z_t.dtype
            )
        elif self.takes_guidance:
            raise ValueError("this guidance-distilled denoiser needs the guidance scale")
        return self.unet(
            z_t, t, encoder_hidden_states=None, class_labels=text_emb.to(z_t.dtype), timestep_cond=cond
        ).sample

    def forward(
        self, z_t: torch.Tensor, t: torch.Tensor, text_emb: torch.Tensor, guidance: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x̂ [B, C, T', F'] for z_t [B, C, T', F'], t [B] int64, text_emb [B, D], guidance [B] or None."""
        return self.x_from_output(self.network(z_t, t, text_emb, guidance), z_t, t)

    def x_from_output(self, out: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x̂ (float32) from the network's raw output ``out`` at (z_t, t) — what :meth:`forward`
        returns for that output; a caller that runs :meth:`network` itself (under ``vmap``, the
        error profile's per-step gradients) converts with this."""
        alpha, sigma = self.schedule.alpha_sigma(t)
        return x_from_prediction(out.float(), z_t.float(), alpha.float(), sigma.float(), self.prediction_type)


class RawOutput(torch.nn.Module):
    """A denoiser's :meth:`Denoiser.network` as a module's ``forward`` (``torch.func.functional_call``
    calls ``forward``): its parameters are the denoiser's, named ``denoiser.<name>``."""

    def __init__(self, denoiser: Denoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, *args) -> torch.Tensor:
        return self.denoiser.network(*args).float()
