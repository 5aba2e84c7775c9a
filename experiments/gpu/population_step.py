"""The weighting study's population trainer on the GPU (issue "A weighting study…"): steps/s of
``PopulationDistillationModule`` — the real distillation loss (two teacher DDIM steps, the student,
per-member weights), per-member gradient clipping, fused AdamW and the EMA, as Lightning steps it —
for K students of the shipped teacher (w-conditioned, a v-student, fp32, batch ``--batch`` each;
``--graphs``: the vmapped calls replayed from CUDA graphs, as ``trainer.cuda_graphs`` makes them),
in the first progressive stage (one shared teacher) and a later one (a teacher per member).
One JSON line per row; random latents and text (speed does not depend on them).
  python3 experiments/gpu/population_step.py --members 1,17 --out $OUT/population_step.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from bsa.diffusion import audioldm_schedule
from bsa.lit.population import PopulationDistillationModule
from bsa.models.assets import resolve_model_path
from bsa.models.denoiser import Denoiser
from bsa.models.population import PopulationUNet
from bsa.models.unet import load_unet, with_guidance_input


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", default="1,17")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="population_step.jsonl")
    parser.add_argument(
        "--graphs", action="store_true", help="the vmapped calls from CUDA graphs (trainer.cuda_graphs)"
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="cuDNN times its algorithms per shape (trainer.cudnn_benchmark)",
    )
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the CPU: a smoke run only
    schedule = audioldm_schedule()
    base = with_guidance_input(load_unet(resolve_model_path("embedded:teacher")).float())
    cfg, b = base.config, args.batch
    latents = torch.randn(b, cfg.in_channels, *cfg.sample_size, device=dev)
    text = torch.randn(b, cfg.projection_class_embeddings_input_dim, device=dev)
    for k in [int(x) for x in args.members.split(",")]:
        for own_teachers in (False, True):
            unets = [copy.deepcopy(base) for _ in range(k)]
            teacher = PopulationUNet(copy.deepcopy(unets)) if own_teachers else copy.deepcopy(base)
            module = PopulationDistillationModule(
                Denoiser(teacher, schedule, "v_prediction"),
                Denoiser(PopulationUNet(unets), schedule, "v_prediction"),
                torch.zeros(cfg.projection_class_embeddings_input_dim),
                weightings=[{"weighting": "bsa", "weighting_kwargs": {"floor": 0.01 * i, "gamma": 5.0}} for i in range(k)],
                mode="progressive", student_steps=25, teacher_steps=50, base_steps=200, lr=2e-4,
                ema_decay=0.999, total_steps=800, warmup_steps=80, teacher_float32=True, cuda_graphs=args.graphs,
            ).to(dev)  # fmt: skip
            config = module.configure_optimizers()
            opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
            module.train()

            def step(module=module, opt=opt, sched=sched):
                loss, _ = module.distillation_loss(latents, text)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                module.configure_gradient_clipping(opt, 1.0, "norm")
                opt.step()
                sched.step()
                module.ema.update(module.student)

            sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
            for _ in range(3):
                step()
            sync()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync()
            seconds = (time.perf_counter() - start) / args.steps
            row = {
                "members": k, "teachers": "own" if own_teachers else "shared", "batch": b, "step_ms": 1000 * seconds,
                "samples_per_s_all": k * b / seconds, "fused_adamw": bool(opt.defaults.get("fused")), "graphs": args.graphs,
                "cudnn_benchmark": args.cudnn_benchmark,
                "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d %H:%M"),
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            del module, opt
            if dev.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
