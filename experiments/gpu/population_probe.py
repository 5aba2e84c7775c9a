"""Probe for the weighting study's 20-minute block (issue "A weighting study…"): can K students of
the embedded UNet train as one population (bsa.models.population: stacked parameters, vmap) at
more aggregate steps/s than K processes, which only time-slice the GPU (~1.2× one run for five)?

One progressive-like step per member: two teacher calls without gradients (the first on a shared
z_t, the second on each member's own intermediate latent, as the two-DDIM-step target needs), one
student call with its backward, fused AdamW on the stacked parameters; random inputs, batch
``--batch`` per member. Rows: K members as a population, and K members stepped one after another in
one process (the eager baseline), samples/s per member and in all. One JSON line per row.
  python3 experiments/gpu/population_probe.py --members 1,4,8,17 --out $OUT/population.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from bsa.models.assets import resolve_model_path
from bsa.models.population import Population
from bsa.models.unet import load_unet, with_guidance_input


def timed(step, steps: int, warmup: int = 3) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", default="1,4,8,17")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", default="population.jsonl")
    args = parser.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the CPU: a smoke run only
    base = with_guidance_input(load_unet(resolve_model_path("embedded:teacher")).float()).to(dev)
    cfg, b = base.config, args.batch
    z = torch.randn(b, cfg.in_channels, *cfg.sample_size, device=dev)
    t = torch.randint(0, 1000, (b,), device=dev)
    text = torch.randn(b, cfg.projection_class_embeddings_input_dim, device=dev)
    cond = torch.randn(b, cfg.time_cond_proj_dim, device=dev)
    kw = dict(encoder_hidden_states=None, class_labels=text, timestep_cond=cond)
    for k in [int(x) for x in args.members.split(",")]:
        teachers, students = [copy.deepcopy(base) for _ in range(k)], [copy.deepcopy(base) for _ in range(k)]
        rows = {}
        # the population: one vmapped call per network call for all K members
        tp, sp = Population(teachers).to(dev), Population(students).to(dev)
        opt = torch.optim.AdamW(sp.parameters(), lr=1e-4, fused=True)

        def population_step(tp=tp, sp=sp, opt=opt):
            with torch.autocast(dev.type, torch.bfloat16, enabled=args.bf16):
                with torch.no_grad():
                    mid = tp(z, t, **kw, in_dims=(None, None)).sample  # [K, B, ...]
                    target = tp(mid, t, **kw, in_dims=(0, None)).sample
                out = sp(z, t, **kw, in_dims=(None, None)).sample
                loss = (out.float() - target.float()).pow(2).mean(dim=(1, 2, 3, 4)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rows["population"] = timed(population_step, args.steps)
        # the baseline: the K members one after another in one process
        opts = [torch.optim.AdamW(s.parameters(), lr=1e-4, fused=True) for s in students]

        def sequential_step(teachers=teachers, students=students, opts=opts):
            for teacher, student, o in zip(teachers, students, opts, strict=True):
                with torch.autocast(dev.type, torch.bfloat16, enabled=args.bf16):
                    with torch.no_grad():
                        target = teacher(teacher(z, t, **kw).sample, t, **kw).sample
                    loss = (student(z, t, **kw).sample.float() - target.float()).pow(2).mean()
                o.zero_grad(set_to_none=True)
                loss.backward()
                o.step()

        rows["sequential"] = timed(sequential_step, args.steps)
        for mode, seconds in rows.items():
            row = {
                "members": k, "mode": mode, "batch": b, "bf16": args.bf16, "step_ms": 1000 * seconds,
                "samples_per_s_per_member": b / seconds, "samples_per_s_all": k * b / seconds,
                "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__,
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        if dev.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
