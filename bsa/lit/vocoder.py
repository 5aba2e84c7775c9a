"""VocoderModule: HiFi-GAN's generator (``SpeechT5HifiGan``) trained to turn bsa's log-mels back
into waveforms, with the spectral reconstruction losses of HiFi-GAN and Parallel WaveGAN.

By default no adversarial term: the mel L1 loss (Kong et al. 2020, eq. 5) plus the
multi-resolution STFT loss (Yamamoto et al. 2020, eqs. 1–4), which trains stably in minutes.
``adversarial=True`` trains as HiFi-GAN does: the multi-period and multi-scale discriminators
(:mod:`bsa.models.discriminators`), LSGAN losses, feature matching ×2 and mel L1 ×45 (eq. 6),
two AdamW optimizers (β = 0.8, 0.99), manual optimisation.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from bsa.audio import MelParams, log_magnitude, log_mel
from bsa.lit.guard import NonFiniteGuard
from bsa.lit.optim import adamw_warmup_cosine

# (n_fft, hop, window) of the multi-resolution STFT loss at 16 kHz (Parallel WaveGAN's, halved)
STFT_RESOLUTIONS = ((256, 64, 256), (512, 128, 512), (1024, 256, 1024))


def stft_magnitude(wave: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| [B, frames, bins] with a Hann window, floored at 1e-7 (for the log)."""
    window = torch.hann_window(win, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave, n_fft, hop, win, window, return_complex=True)
    return spec.abs().clamp(min=1e-7).transpose(1, 2)


def spectral_convergence(pred_mag: torch.Tensor, true_mag: torch.Tensor) -> torch.Tensor:
    """‖ |S| − |Ŝ| ‖_F / ‖ |S| ‖_F (Yamamoto et al. 2020, eq. 2), the norms over the whole batch as
    in the reference implementation: per clip, a silent crop (‖S‖ ≈ 0) would blow the ratio up."""
    return (true_mag - pred_mag).norm() / true_mag.norm().clamp(min=1e-7)


def log_magnitude_distance(pred_mag: torch.Tensor, true_mag: torch.Tensor) -> torch.Tensor:
    """(1/N) ‖ log|S| − log|Ŝ| ‖₁ (Yamamoto et al. 2020, eq. 3)."""
    return (true_mag.log() - pred_mag.log()).abs().mean()


def multi_resolution_stft_loss(pred: torch.Tensor, true: torch.Tensor, resolutions=STFT_RESOLUTIONS):
    """Σ over resolutions of spectral convergence + log-magnitude distance, / #resolutions (eq. 4)."""
    total = pred.new_zeros(())
    for n_fft, hop, win in resolutions:
        p, t = stft_magnitude(pred, n_fft, hop, win), stft_magnitude(true, n_fft, hop, win)
        total = total + spectral_convergence(p, t) + log_magnitude_distance(p, t)
    return total / len(resolutions)


def mel_l1(pred: torch.Tensor, true_log_mel: torch.Tensor, params: MelParams = MelParams()) -> torch.Tensor:
    """‖ mel(ŷ) − mel(y) ‖₁ on bsa's log-mels (HiFi-GAN eq. 5, in its log-mel form)."""
    return (log_mel(pred, params) - true_log_mel).abs().mean()


class VocoderModule(NonFiniteGuard, pl.LightningModule):
    def __init__(
        self,
        vocoder_config: dict,
        *,
        lr: float = 2e-4,
        total_steps: int = 10_000,
        warmup_steps: int = 0,
        mel_weight: float = 1.0,
        stft_weight: float = 1.0,
        adversarial: bool = False,
        discriminator_width: float = 0.25,
    ):
        super().__init__()
        from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

        self.save_hyperparameters()
        self.vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(**vocoder_config))
        self.discriminators = None
        if adversarial:
            from bsa.models.discriminators import HifiGanDiscriminators

            self.discriminators = HifiGanDiscriminators(discriminator_width)
            self.automatic_optimization = False  # two optimizers, one step each per batch

    def losses(self, wave: torch.Tensor, with_wave: bool = False) -> dict[str, torch.Tensor]:
        """wave [B, L], L a multiple of the hop: its log-mel → the vocoder → the two losses
        (and the generated waveform as ``"pred"`` with ``with_wave``)."""
        mel = log_mel(wave)  # [B, L / hop, n_mels]
        pred = self.vocoder(mel).float()[..., : wave.shape[-1]]  # [B, L] (HiFi-GAN adds a few samples)
        parts = {"mel": mel_l1(pred, mel), "stft": multi_resolution_stft_loss(pred, wave)}
        return parts | {"pred": pred} if with_wave else parts

    def adversarial_step(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        """One discriminator step, then one generator step (HiFi-GAN §2.4, eqs. 1, 2, 4, 6)."""
        from bsa.models.discriminators import (
            discriminator_loss,
            feature_matching_loss,
            generator_adversarial_loss,
        )

        opt_g, opt_d = self.optimizers()
        parts = self.losses(wave, with_wave=True)
        pred = parts.pop("pred")
        real_scores, real_features = self.discriminators(wave)
        fake_scores, _ = self.discriminators(pred.detach())
        d_loss = discriminator_loss(real_scores, fake_scores)
        self._manual_step(opt_d, d_loss)
        fake_scores, fake_features = self.discriminators(pred)
        adv = generator_adversarial_loss(fake_scores)
        fm = feature_matching_loss(real_features, fake_features)
        g_loss = adv + 2.0 * fm + 45.0 * parts["mel"]
        self._manual_step(opt_g, g_loss)
        for scheduler in self.lr_schedulers():
            scheduler.step()
        return {"loss": g_loss, "disc": d_loss, "adv": adv, "fm": fm, **parts}

    def _manual_step(self, optimizer, loss: torch.Tensor) -> None:
        """Backward, clip to norm 1 and step — or nothing for a non-finite loss (counted by the guard)."""
        optimizer.zero_grad(set_to_none=True)
        if self.guard(loss) is None:
            return
        self.manual_backward(loss)
        self.clip_gradients(optimizer, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
        optimizer.step()

    def training_step(self, batch, batch_idx: int):
        if self.discriminators is not None:
            parts = self.adversarial_step(batch[0])
            self.log("train/loss", parts.pop("loss"), prog_bar=True)
            self.log_dict({f"train/{k}": v for k, v in parts.items()})
            return None
        parts = self.losses(batch[0])
        hp = self.hparams
        loss = hp.mel_weight * parts["mel"] + hp.stft_weight * parts["stft"]
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in parts.items()})
        return self.guard(loss)

    def validation_step(self, batch, batch_idx: int) -> None:
        parts = self.losses(batch[0])
        self.log("val/mel", parts["mel"], prog_bar=True, sync_dist=True)
        self.log("val/stft", parts["stft"], sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        g = adamw_warmup_cosine(
            self.vocoder.parameters(), hp.lr, hp.total_steps, hp.warmup_steps, betas=(0.8, 0.99)
        )
        if self.discriminators is None:
            return g
        d = adamw_warmup_cosine(
            self.discriminators.parameters(), hp.lr, hp.total_steps, hp.warmup_steps, betas=(0.8, 0.99)
        )
        return [g["optimizer"], d["optimizer"]], [g["lr_scheduler"], d["lr_scheduler"]]


class MagnitudeVocoderModule(NonFiniteGuard, pl.LightningModule):
    """``MagnitudeVocoder`` trained on the L1 distance between its log linear magnitude and the
    clip's (``bsa.audio.log_magnitude``, framed as the log-mel is) plus ``spectral_convergence``
    times the spectral convergence (Parallel WaveGAN's STFT loss, Yamamoto et al. 2020, eq. 1–3):
    supervised per frame, no waveform in the loop (Griffin-Lim runs only at inference)."""

    def __init__(
        self,
        vocoder_config: dict | None = None,
        *,
        lr: float = 1e-3,
        total_steps: int = 2000,
        warmup_steps: int = 0,
        spectral_convergence: float = 0.0,
    ):
        super().__init__()
        from bsa.models.vocoder import MagnitudeVocoder

        self.save_hyperparameters()
        self.vocoder = MagnitudeVocoder(**(vocoder_config or {}))

    def terms(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-magnitude L1, spectral convergence) of the clips ``wave`` [B, L]."""
        predicted, target = self.vocoder.log_magnitude(log_mel(wave)).exp(), log_magnitude(wave).exp()
        return log_magnitude_distance(predicted, target), spectral_convergence(predicted, target)

    def loss(self, wave: torch.Tensor) -> torch.Tensor:
        l1, sc = self.terms(wave)
        return l1 + self.hparams.spectral_convergence * sc

    def training_step(self, batch, batch_idx: int):
        loss = self.loss(batch[0])
        self.log("train/loss", loss, prog_bar=True)
        return self.guard(loss)

    def validation_step(self, batch, batch_idx: int) -> None:
        l1, sc = self.terms(batch[0])
        self.log("val/log_magnitude_l1", l1, prog_bar=True, sync_dist=True)
        self.log("val/spectral_convergence", sc, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self.vocoder.parameters(), hp.lr, hp.total_steps, hp.warmup_steps)
