"""TeacherModule: ordinary denoising training of the latent diffusion teacher (SPEC §1, §7).

Caption dropout (the null-caption embedding with probability ``cond_drop_prob``) trains the
unconditional branch for classifier-free guidance; EMA weights are what gets exported.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from diffusers import UNet2DConditionModel

from bsa.diffusion import audioldm_schedule, get_weighting, prediction_from_x, x_space_factor
from bsa.lit.guard import NonFiniteGuard
from bsa.lit.optim import adamw_warmup_cosine
from bsa.models.ema import EMA


class TeacherModule(NonFiniteGuard, pl.LightningModule):
    def __init__(
        self,
        unet_config: dict,
        null_text_emb: torch.Tensor,
        *,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        cond_drop_prob: float = 0.1,
        ema_decay: float = 0.999,
        total_steps: int = 10_000,
        warmup_steps: int = 500,
        prediction_type: str = "epsilon",
        schedule_kwargs: dict | None = None,
        weighting: str = "snr",
        weighting_kwargs: dict | None = None,
        compile: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["null_text_emb", "compile"])
        self.unet = UNet2DConditionModel(**unet_config)
        # the torch.compile'd call, kept apart from the module (as DistillationModule's): the state
        # dict, checkpoints and the EMA copy stay those of the eager UNet
        self._compiled = torch.compile(self.unet.forward, **compile) if compile else None
        self.ema = EMA(self.unet, ema_decay) if ema_decay > 0 else None
        self.schedule = audioldm_schedule(**(schedule_kwargs or {}))
        self.weight_fn = get_weighting(weighting, **(weighting_kwargs or {}))
        self.register_buffer("null_text_emb", null_text_emb.float().clone())

    def denoising_loss(
        self, latents: torch.Tensor, text_emb: torch.Tensor, compiled: bool = True
    ) -> torch.Tensor:
        """The parameterisation's MSE at t ~ U{0, …, T−1} (Ho et al. 2020, eq. 14), weighted so that
        its x-space weight is ``weighting`` (SPEC §5): with ε-prediction the default ``snr`` is the
        plain ε-MSE, ``min_snr`` is Hang et al. (2023)'s min(SNR, γ)/SNR · ε-MSE."""
        b = latents.shape[0]
        drop = torch.rand(b, device=latents.device) < self.hparams.cond_drop_prob
        cond = torch.where(drop[:, None], self.null_text_emb.to(text_emb.dtype).expand_as(text_emb), text_emb)
        t = torch.randint(0, self.schedule.num_train_timesteps, (b,), device=latents.device)
        eps = torch.randn_like(latents)
        alpha, sigma = (v.float().view(-1, 1, 1, 1) for v in self.schedule.alpha_sigma(t))
        z_t = alpha * latents + sigma * eps
        target = (
            prediction_from_x(latents, z_t, alpha.flatten(), sigma.flatten(), self.hparams.prediction_type)
            if self.hparams.prediction_type != "epsilon"
            else eps
        )
        unet = self._compiled if compiled and self._compiled is not None else self.unet
        pred = unet(z_t, t, encoder_hidden_states=None, class_labels=cond).sample
        per_example = (pred.float() - target).pow(2).flatten(1).mean(1)
        snr = self.schedule.snr(t).float()
        return (self.weight_fn(snr) / x_space_factor(snr, self.hparams.prediction_type) * per_example).mean()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.denoising_loss(batch["latents"], batch["text_emb"])
        self.log("train/loss", loss, prog_bar=True)
        return self.guard(loss)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        g = torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])
        with g:
            torch.manual_seed(batch_idx)
            self.log(
                "val/loss",
                # eager: a compiled call would be recompiled for evaluation mode (minutes at scale)
                self.denoising_loss(batch["latents"], batch["text_emb"], compiled=False),
                prog_bar=True,
                sync_dist=True,
            )

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:  # at once, so that every checkpoint holds θ_N with its EMA (lit.distill)
            self.ema.update(self.unet)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(
            self.unet.parameters(),
            hp.lr,
            hp.total_steps,
            hp.warmup_steps,
            weight_decay=self.hparams.weight_decay,
        )

    def export_unet(self) -> UNet2DConditionModel:
        """The weights to ship: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.unet
