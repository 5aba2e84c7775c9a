"""Where a teacher training step's time goes, on the GPU: steps/s of the embedded teacher for a few
seconds each — the real latent stream through Lightning (what `bsa train teacher` does), the same
with a batch already on the GPU, and a bare PyTorch loop (with and without EMA, fp32 and bf16).

    python experiments/gpu/teacher_throughput.py experiments/embedded-gpu.yaml [key=value ...] > out.json
"""

from __future__ import annotations

import json
import sys
import time

import torch


def main(argv: list[str]) -> None:
    import lightning.pytorch as pl

    from bsa.config import load_config
    from bsa.experiment.build import latent_datamodule
    from bsa.lit.teacher import TeacherModule
    from bsa.models.unet import audioldm_unet_config

    files = [a for a in argv if "=" not in a]
    cfg = load_config(files, [a for a in argv if "=" in a])
    c, seconds = cfg.train.teacher, 20.0
    dm = latent_datamodule(cfg, c.batch_size, num_workers=8)
    shape = dm.manifest.identity.latent_shape
    unet_config = audioldm_unet_config(
        c.size, dm.manifest.identity.text_encoder["dim"], shape[0], tuple(shape[1:])
    )

    def module(ema: bool = True):
        return TeacherModule(
            unet_config,
            dm.null_text_embedding,
            lr=c.lr,
            ema_decay=c.ema_decay if ema else 0.0,
            total_steps=10**6,
            warmup_steps=10,
        ).cuda()

    batch = next(iter(dm.train_dataloader()))
    lat, txt = batch["latents"].cuda(), batch["text_emb"].cuda()
    rows = []

    class Synthetic(torch.utils.data.IterableDataset):
        def __iter__(self):
            while True:
                yield {"latents": lat, "text_emb": txt}

    for name, data in (("lightning, latent stream", dm), ("lightning, batch on GPU", None)):
        m = module()
        loader = data if data is not None else torch.utils.data.DataLoader(Synthetic(), batch_size=None)
        trainer = pl.Trainer(
            accelerator="gpu",
            devices=1,
            precision=cfg.trainer.precision,
            max_time={"seconds": seconds},
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            limit_val_batches=0,
            enable_model_summary=False,
            gradient_clip_val=1.0,
        )
        start = time.perf_counter()
        trainer.fit(m, loader)
        rows.append({"variant": name, "steps_per_s": trainer.global_step / (time.perf_counter() - start)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for name, ema, bf16 in (
        ("bare loop, fp32, EMA", True, False),
        ("bare loop, fp32, no EMA", False, False),
        ("bare loop, bf16, EMA", True, True),
        ("bare loop, bf16, no EMA", False, True),
    ):
        m = module(ema)
        opt = m.configure_optimizers()["optimizer"]
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
                loss = m.denoising_loss(lat, txt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if m.ema is not None:
                m.ema.update(m.unet)
            steps += 1
        torch.cuda.synchronize()
        rows.append({"variant": name, "steps_per_s": steps / (time.perf_counter() - start)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "batch": c.batch_size,
                "size": c.size,
                "precision": cfg.trainer.precision,
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
