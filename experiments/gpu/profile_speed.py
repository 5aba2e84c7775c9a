"""What a stage's error profile costs (``DistillationModule.error_profile``, run at the end of every
stage for every run; a population's 17 members one after the other): the shipped teacher's guided
copy as teacher and student, fp32, the stage's student steps, 64 clips, gradients on 16 — with the
steps batched into few calls (the default) and, side by side, one step per call and one step's
gradient per backward pass (the layout before 2026-12-07: ~9 s a member at a 100-step stage on an
H200). Rows agree to float rounding (tests/test_distill.py); one JSON line per (steps, layout).
With ``--population K``: a population's stage end, K students with teachers of their own (the later
stages' case) — every member's profile in one pass (``error_profiles``, since 2026-12-07) against
each member materialised and profiled in turn (``member(k).error_profile``, the stage end before).
  python3 experiments/gpu/profile_speed.py --out $OUT/profile_speed.jsonl [--population 17]
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from bsa.diffusion import audioldm_schedule
from bsa.lit.distill import DistillationModule
from bsa.models.assets import resolve_model_path
from bsa.models.denoiser import Denoiser
from bsa.models.unet import load_unet, with_guidance_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 25])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--population", type=int, default=0, help="K students as one population")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    unet = with_guidance_input(load_unet(resolve_model_path("embedded:teacher")))
    schedule = audioldm_schedule()
    text_dim = unet.config.projection_class_embeddings_input_dim
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(args.clips, unet.config.in_channels, *unet.config.sample_size, generator=g).to(
        device
    )
    text = torch.randn(args.clips, text_dim, generator=g).to(device)
    layouts = {"batched": {}, "per step": {"batch_items": args.clips, "gradient_elements": 1}}
    if args.population:
        layouts = {"population, one pass": None, "member by member": None}
    with open(args.out, "w") as out:
        for steps in args.steps:
            m = module(unet, schedule, text_dim, steps, args.population).to(device).eval()
            for name, kw in layouts.items():
                times = []
                for _ in range(args.repeat):
                    if device == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    if name == "population, one pass":
                        rows = m.error_profiles(latents, text, seed=0)[0]
                    elif name == "member by member":
                        rows = [
                            m.member(k).eval().error_profile(latents, text, seed=0) for k in range(m.members)
                        ][0]
                    else:
                        rows = m.error_profile(latents, text, seed=0, **kw)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - start)
                row = {
                    "steps": steps,
                    "population": args.population,
                    "layout": name,
                    "seconds": times,
                    "best_s": min(times),
                    "grad_norm_0": rows[0]["grad_norm"],
                    "x_mse_0": rows[0]["x_mse"],
                    "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                    "torch": torch.__version__,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                }
                print(json.dumps(row), flush=True)
                out.write(json.dumps(row) + "\n")


def module(unet, schedule, text_dim: int, steps: int, population: int, **extra):
    """A progressive stage of ``steps`` student steps from the shipped teacher's guided copy: one
    student, or a population of ``population`` students with teachers of their own."""
    if not population:
        return DistillationModule(
            Denoiser(copy.deepcopy(unet), schedule), Denoiser(unet, schedule), torch.zeros(text_dim),
            mode="progressive", student_steps=steps, **extra,
        )  # fmt: skip
    from bsa.lit.population import PopulationDistillationModule
    from bsa.models.population import PopulationUNet

    weightings = [
        {"weighting": "bsa", "weighting_kwargs": {"floor": 0.1, "gamma": 5.0 + k}} for k in range(population)
    ]
    return PopulationDistillationModule(
        Denoiser(PopulationUNet([copy.deepcopy(unet) for _ in range(population)]), schedule),
        Denoiser(PopulationUNet([copy.deepcopy(unet) for _ in range(population)]).requires_grad_(True), schedule),
        torch.zeros(text_dim), weightings=weightings, mode="progressive", student_steps=steps, **extra,
    )  # fmt: skip


if __name__ == "__main__":
    main()
