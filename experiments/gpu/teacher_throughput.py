"""Teacher training throughput on the GPU, through what `bsa train teacher` runs (Lightning,
TeacherModule, the LatentDataModule): the streamed latent cache against the resident batches
(`data.resident`), eager against compiled (`trainer.compile`). Steady-state steps/s, counted after
the first `warmup` steps (compilation), for `seconds` of wall time each.

    python experiments/gpu/teacher_throughput.py experiments/embedded-gpu.yaml [key=value ...] > out.json
"""

from __future__ import annotations

import json
import os
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
    torch.set_float32_matmul_precision(cfg.trainer.matmul_precision)
    c, seconds, warmup = cfg.train.teacher, float(os.environ.get("SECONDS_EACH", 40)), 30
    variants = os.environ.get("VARIANTS", "stream:off,resident:off,resident:default").split(",")
    rows = []

    class Clock(pl.Callback):
        start = rate = None

        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == warmup:
                torch.cuda.synchronize()
                self.start = time.perf_counter()

        def on_train_end(self, trainer, *args):
            torch.cuda.synchronize()
            if self.start is not None:  # else warm-up (compilation) took the whole time
                self.rate = (trainer.global_step - warmup) / (time.perf_counter() - self.start)

    for variant in variants:
        data, compile_mode = variant.split(":")
        cfg.data.resident = data == "resident"
        cfg.trainer.compile = compile_mode
        dm = latent_datamodule(cfg, c.batch_size, num_workers=min(8, cfg.data.num_workers))
        shape = dm.manifest.identity.latent_shape
        module = TeacherModule(
            audioldm_unet_config(
                c.size, dm.manifest.identity.text_encoder["dim"], shape[0], tuple(shape[1:])
            ),
            dm.null_text_embedding,
            lr=c.lr,
            ema_decay=c.ema_decay,
            total_steps=10**6,
            warmup_steps=10,
            weighting=c.weighting,
            weighting_kwargs={"gamma": c.min_snr_gamma},
            compile=cfg.trainer.compile_kwargs(),
        )
        clock = Clock()
        start = time.perf_counter()
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
            callbacks=[clock],
        )
        trainer.fit(module, dm)
        rows.append(
            {
                "data": data,
                "compile": compile_mode,
                "steps_per_s": clock.rate and round(clock.rate, 2),
                "samples_per_s": clock.rate and round(clock.rate * c.batch_size),
                "wall_s": round(time.perf_counter() - start, 1),
                "steps": trainer.global_step,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "batch": c.batch_size,
                "size": c.size,
                "precision": cfg.trainer.precision,
                "matmul_precision": cfg.trainer.matmul_precision,
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
