"""EvaluatorModule: trains the embedded evaluator — attribute classification (cross-entropy per
head) + a symmetric text–audio contrastive loss (CLIP, Radford et al. 2021, eq. in Fig. 3)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from bsa.lit.guard import NonFiniteGuard
from bsa.lit.optim import adamw_warmup_cosine
from bsa.models.evaluator import AudioEvaluator


class EvaluatorModule(NonFiniteGuard, pl.LightningModule):
    def __init__(
        self,
        evaluator_config: dict,
        *,
        lr: float = 1e-3,
        total_steps: int = 3000,
        warmup_steps: int = 100,
        contrastive_weight: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = AudioEvaluator(**evaluator_config)

    def losses(self, mel, text_emb, labels):
        emb = self.model.embed(mel)
        logits = self.model.classify(emb)
        ce = sum(
            torch.nn.functional.cross_entropy(logits[k], labels[:, i]) for i, k in enumerate(self.model.heads)
        )
        a, t = self.model.audio_joint(emb), self.model.text_joint(text_emb)
        sim = self.model.logit_scale.exp().clamp(max=100) * a @ t.T
        # captions repeat in the data: every pair with the same caption embedding counts as positive
        # (exact equality: cdist under bf16 autocast can give NaN on identical rows)
        same = (text_emb[:, None, :] == text_emb[None, :, :]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        clip = -(target * sim.log_softmax(1)).sum(1).mean() - (target * sim.log_softmax(0).T).sum(1).mean()
        acc = {
            k: (logits[k].argmax(1) == labels[:, i]).float().mean() for i, k in enumerate(self.model.heads)
        }
        return ce, clip / 2, acc

    def training_step(self, batch, batch_idx):
        mel, text_emb, labels = batch
        ce, clip, acc = self.losses(mel, text_emb, labels)
        self.log_dict({"train/ce": ce, "train/clip": clip}, prog_bar=True)
        return self.guard(ce + self.hparams.contrastive_weight * clip)

    def validation_step(self, batch, batch_idx):
        mel, text_emb, labels = batch
        ce, clip, acc = self.losses(mel, text_emb, labels)
        self.log_dict(
            {"val/ce": ce, "val/clip": clip, **{f"val/acc_{k}": v for k, v in acc.items()}}, sync_dist=True
        )

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(
            self.model.parameters(), hp.lr, hp.total_steps, hp.warmup_steps, weight_decay=1e-4
        )
