"""``DistilledAudioLDMPipeline``: diffusers' ``AudioLDMPipeline`` for bsa students.

It keeps AudioLDM's components and helpers (CLAP prompt encoding, VAE decoding, the vocoder) and
replaces the denoising loop with bsa's one sampler (``bsa.diffusion.sample``) on the grid the
student was distilled on (``timesteps`` of its ``bsa_stage.json``, see ``bsa.models.export.stage_grid``). A guidance-distilled student receives the guidance scale as input and costs
one UNet call per step; any other UNet runs classifier-free guidance (two). The step count
defaults to the stage's ``num_sample_steps``. ``save_pretrained``/``from_pretrained`` work as for
any diffusers pipeline, so an exported stage loads from its folder alone.
"""

from __future__ import annotations

import torch
from diffusers.pipelines.deprecated.audioldm import AudioLDMPipeline
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput

from bsa.diffusion import audioldm_schedule, sample
from bsa.models.denoiser import Denoiser
from bsa.models.graphs import GraphedCall
from bsa.models.stages import stage_grid


class DistilledAudioLDMPipeline(AudioLDMPipeline):
    num_sample_steps: int | None = None  # the stage's own step count, read from bsa_stage.json
    stage: dict | None = None  # the stage's bsa_stage.json: its grid travels with the folder

    @classmethod
    def from_pretrained(cls, folder, **kwargs):
        import json
        from pathlib import Path

        pipe = super().from_pretrained(folder, **kwargs)
        stage = Path(folder) / "bsa_stage.json"
        if stage.is_file():
            pipe.stage = json.loads(stage.read_text())
            pipe.num_sample_steps = int(pipe.stage["num_sample_steps"])
        return pipe

    def _schedule(self):
        c = self.scheduler.config
        return audioldm_schedule(c.beta_start, c.beta_end, c.num_train_timesteps, c.beta_schedule)

    def _denoiser(self) -> Denoiser:
        """The UNet as a bsa denoiser, and its graphed call, built once per UNet (graphs are
        captured once and replayed by every later call of the pipeline)."""
        if getattr(self, "_bsa_denoiser", None) is None or self._bsa_denoiser.unet is not self.unet:
            self._bsa_denoiser = Denoiser(self.unet, self._schedule(), self.scheduler.config.prediction_type)
            self._graphed = GraphedCall(self._bsa_denoiser)
        return self._bsa_denoiser

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        num_inference_steps: int | None = None,
        guidance_scale: float = 2.5,
        audio_length_in_s: float | None = None,
        latents: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        cuda_graphs: bool = False,
    ):
        """Text → audio with the student's sampler. ``cuda_graphs``: replay the UNet's calls from
        CUDA graphs (``bsa.models.graphs``), captured in the first call per batch shape and kept
        for later calls; on the CPU the calls run eagerly either way."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        steps = num_inference_steps or self.num_sample_steps or 0
        if steps < 1:
            raise ValueError("give num_inference_steps (this pipeline has no stored num_sample_steps)")
        device = self._execution_device
        hop = (
            self.vocoder.config.sampling_rate / torch.tensor(self.vocoder.config.upsample_rates).prod().item()
        )
        frames = int(round((audio_length_in_s or 2.56) * hop))
        down = self.vae_scale_factor
        frames = -(-frames // down) * down
        shape = (
            len(prompts),
            self.unet.config.in_channels,
            frames // down,
            self.vocoder.config.model_in_dim // down,
        )
        if latents is None:
            latents = torch.randn(shape, generator=generator, device="cpu").to(device)
        denoiser = self._denoiser()
        call = self._graphed if cuda_graphs else denoiser
        grid = stage_grid(self.stage, steps, self.scheduler.config.num_train_timesteps).to(device)
        cond = self._encode_prompt(prompts, device, 1, False)
        if denoiser.takes_guidance:
            scale = torch.full((len(prompts),), float(guidance_scale), device=device)
            z = sample(lambda x, t: call(x, t, cond, scale), latents.to(device), grid, denoiser.schedule)
        else:
            null = self._encode_prompt([""], device, 1, False)[0]
            z = sample(
                call,
                latents.to(device),
                grid,
                denoiser.schedule,
                cond=cond,
                null_cond=null,
                guidance_scale=guidance_scale,
            )
        audio = self.mel_spectrogram_to_waveform(self.decode_latents(z.to(self.vae.dtype)))
        audio = audio[:, : int((audio_length_in_s or 2.56) * self.vocoder.config.sampling_rate)]
        if output_type == "np":
            audio = audio.numpy()
        return AudioPipelineOutput(audios=audio) if return_dict else (audio,)
