"""Text → audio with any denoiser and step count: text encoder → the one sampler → VAE → vocoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bsa.diffusion import NoiseSchedule, guidance_active, network_calls, sample
from bsa.models.autoencoder import decode_latents
from bsa.models.denoiser import Denoiser
from bsa.models.graphs import GraphedCall, release_graphs
from bsa.models.stages import stage_grid


def seeded_noise(
    seeds: list[int], shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """One N(0, I) latent per seed [len(seeds), *shape]: clip i depends on seeds[i] only, not on
    the batch it is generated in."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    ).to(device)


@dataclass
class TextToAudio:
    denoiser: Denoiser
    vae: torch.nn.Module
    vocoder: torch.nn.Module
    text_encoder: torch.nn.Module | None  # only generate() needs it; latents() takes embeddings
    null_text_emb: torch.Tensor  # [D]
    base_steps: int | None = (
        None  # the original teacher's sampling steps: students sample on its nested grids
    )
    stage: dict | None = None  # bsa_stage.json of an exported stage: it samples on the grid it was trained on
    grid_power: float = 1.0  # spacing of the base grid for a model that is not a stage (distill.grid_power)
    # torch.compile keyword arguments for the denoiser's calls (eval.compile): "reduce-overhead"
    # replays each step as a CUDA graph (one per batch shape), without the per-kernel launches that
    # bound a small UNet at batch 1; None = eager
    compile: dict | None = None
    # or, without compiling, the denoiser's calls replayed from CUDA graphs (bsa.models.graphs,
    # eval.cuda_graphs): one graph per batch shape, captured in the first batch
    cuda_graphs: bool = False
    # (t_lo, t_hi): guidance only at the steps whose timestep lies in it, the conditional model
    # (scale 1) at the others (eval.guidance_interval; bsa.diffusion.guidance_active)
    guidance_interval: tuple[int, int] | None = None

    def denoise_call(self):
        """The denoiser's forward: compiled once per pipeline when ``compile`` is set, else
        graphed when ``cuda_graphs`` is (and the denoiser is on a GPU), else eager."""
        if self.compile:
            if getattr(self, "_compiled", None) is None:
                self._compiled = torch.compile(self.denoiser.forward, **self.compile)
            return self._compiled
        if self.cuda_graphs:
            if getattr(self, "_graphed", None) is None:
                self._graphed = GraphedCall(self.denoiser)
            return self._graphed
        return self.denoiser

    def release_graphs(self) -> None:
        """Drops the graphs of the denoiser's calls (``cuda_graphs``) and gives their memory back:
        a stage's evaluation builds one pipeline per model it scores (17 members of a population
        one after another), whose graphs would otherwise wait for the garbage collector."""
        if getattr(self, "_graphed", None) is not None:
            release_graphs([self._graphed])

    @property
    def schedule(self) -> NoiseSchedule:
        return self.denoiser.schedule

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """(C, T', F') of one clip's latent, from the UNet's own config."""
        config = self.denoiser.unet.config
        return (config.in_channels, *config.sample_size)

    @torch.no_grad()
    def latents(
        self, text_emb: torch.Tensor, seeds: list[int], num_steps: int, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        """Sample latents [B, C, T', F'] with ``num_steps`` steps. A guidance-distilled denoiser takes the
        scale as input (one call per step); otherwise CFG runs the network twice per step."""
        device = next(self.denoiser.parameters()).device
        text_emb = text_emb.to(device)
        noise = seeded_noise(seeds, self.latent_shape, device)
        grid = self.grid(num_steps).to(device)
        denoise = self.denoise_call()
        if self.denoiser.takes_guidance:
            w = torch.full((len(seeds),), float(guidance_scale), device=device)
            interval = self.guidance_interval

            def call(z, t):  # the scale is an input: 1 outside the interval (no sync, graph-safe)
                return denoise(
                    z, t, text_emb, torch.where(guidance_active(t, interval), w, torch.ones_like(w))
                )

            return sample(call, noise, grid, self.schedule)
        return sample(
            denoise,
            noise,
            grid,
            self.schedule,
            cond=text_emb,
            null_cond=self.null_text_emb.to(device),
            guidance_scale=guidance_scale,
            guidance_interval=self.guidance_interval,
        )

    def grid(self, num_steps: int) -> torch.Tensor:
        """The timesteps a ``num_steps`` sampling visits: a stage's own grid, else the base grid's."""
        return stage_grid(
            self.stage, num_steps, self.schedule.num_train_timesteps, self.base_steps, self.grid_power
        )

    def network_calls(self, num_steps: int, guidance_scale: float) -> int:
        """NFE per clip of :meth:`latents` (``bsa.diffusion.network_calls`` over this pipeline's grid
        and guidance interval)."""
        grid = self.grid(num_steps)
        guided = sum(bool(guidance_active(int(t), self.guidance_interval)) for t in grid)
        return network_calls(num_steps, self.denoiser.takes_guidance, guidance_scale, guided)

    def to(self, device: torch.device | str) -> TextToAudio:
        for m in (self.denoiser, self.vae, self.vocoder, self.text_encoder):
            if m is not None:
                m.to(device)
        return self

    @torch.no_grad()
    def waveforms(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents → log-mel (VAE) → waveform [B, frames · hop] (vocoder), float32 on the CPU. HiFi-GAN's
        transposed convolutions add a few samples, which are cut (as AudioLDM's pipeline does)."""
        mel = decode_latents(self.vae, latents).squeeze(1)
        p = next(self.vocoder.parameters(), None)
        wave = self.vocoder(mel if p is None else mel.to(p.device, p.dtype)).float()
        hop = int(torch.tensor(self.vocoder.config.upsample_rates).prod())
        return wave[..., : mel.shape[1] * hop].cpu()

    @torch.no_grad()
    def generate(
        self, captions: list[str], seeds: list[int], num_steps: int, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        return self.waveforms(
            self.latents(self.text_encoder(captions).float(), seeds, num_steps, guidance_scale)
        )
