"""VAEModule: trains the mel VAE (diffusers AutoencoderKL) on log-mels: L1 reconstruction + β·KL."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from diffusers import AutoencoderKL

from bsa.lit.guard import NonFiniteGuard
from bsa.lit.optim import adamw_warmup_cosine


class VAEModule(NonFiniteGuard, pl.LightningModule):
    def __init__(
        self,
        vae_config: dict,
        *,
        lr: float = 5e-4,
        kl_weight: float = 1e-4,
        total_steps: int = 5000,
        warmup_steps: int = 200,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vae = AutoencoderKL(**vae_config)

    def losses(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = mel.unsqueeze(1)  # [B, 1, T, F]
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        return torch.nn.functional.l1_loss(recon.float(), x.float()), posterior.kl().mean() / x[0].numel()

    def training_step(self, batch, batch_idx):
        (mel,) = batch
        l1, kl = self.losses(mel)
        loss = l1 + self.hparams.kl_weight * kl
        self.log_dict({"train/l1": l1, "train/kl": kl}, prog_bar=True)
        return self.guard(loss)

    def validation_step(self, batch, batch_idx):
        (mel,) = batch
        x = mel.unsqueeze(1)
        recon = self.vae.decode(self.vae.encode(x).latent_dist.mean).sample
        self.log(
            "val/l1", torch.nn.functional.l1_loss(recon.float(), x.float()), prog_bar=True, sync_dist=True
        )

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self.vae.parameters(), hp.lr, hp.total_steps, hp.warmup_steps)
