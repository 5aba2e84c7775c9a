"""Where a population step's time goes on the GPU (issue "A weighting study…": a 4-step block of 17
students is ~35 min on one H200, 405 ms a step with a teacher per member; the done-when asks ≤ 20).
The calls of one step, timed apart, each in the ways it could be run:
  * ``teacher``: K teachers' forward on per-member latents (no gradient), ``student``: K students'
    forward + backward, both fp32 as the embedded-gpu preset trains;
  * ``vmap`` (today: ``PopulationUNet``, grouped convolutions), with cuDNN's heuristic or with
    ``cudnn.benchmark`` (it times the algorithms of each new shape), with TF32 matmuls;
  * ``single``: one UNet at batch K·B — the same FLOPs without grouping (a floor, not an option);
  * ``compiled``: the vmapped call under ``torch.compile`` (fused GroupNorm/SiLU/element-wise);
  * ``cl``: the latents and the stacked convolution weights channels-last (cuDNN's grouped
    convolutions run NHWC: in NCHW it transposes around each);
and, with ``profile``, the CUDA kernels of the student call by total time (``torch.profiler``).
One JSON line per row, to ``--out``.
  python3 experiments/gpu/population_kernels.py --members 17 --out $OUT/population_kernels.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from bsa.diffusion import audioldm_schedule
from bsa.models.assets import resolve_model_path
from bsa.models.denoiser import Denoiser
from bsa.models.population import PopulationUNet
from bsa.models.unet import load_unet, with_guidance_input


def timed(fn, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(ms per call after ``warmup`` calls, seconds of the warm-up)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return 1000 * (time.perf_counter() - start) / steps, warm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=17)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--variants",
        default="vmap,vmap+benchmark+profile,vmap+benchmark+tf32,vmap+benchmark+cl,single+benchmark",
    )
    parser.add_argument("--out", default="population_kernels.jsonl")
    args = parser.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    schedule = audioldm_schedule()
    base = with_guidance_input(load_unet(resolve_model_path("embedded:teacher")).float())
    cfg, k, b = base.config, args.members, args.batch
    shape = (cfg.in_channels, *cfg.sample_size)
    text = torch.randn(b, cfg.projection_class_embeddings_input_dim, device=dev)
    scale = torch.full((b,), 2.5, device=dev)
    t = torch.randint(0, 1000, (b,), device=dev)
    z_own = torch.randn(k, b, *shape, device=dev)
    z_shared = torch.randn(b, *shape, device=dev)
    stamp = {"members": k, "batch": b, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
             "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}  # fmt: skip

    def write(row):
        row = {**row, **stamp}
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")

    for variant in args.variants.split(","):
        parts = set(variant.split("+"))
        torch.backends.cudnn.benchmark = "benchmark" in parts
        torch.set_float32_matmul_precision("high" if "tf32" in parts else "highest")
        try:
            if "single" in parts:
                net = Denoiser(copy.deepcopy(base).to(dev), schedule, "v_prediction")
                tk, zk, sk = text.repeat(k, 1), z_own.flatten(0, 1), scale.repeat(k)
                tt = t.repeat(k)

                def teacher(net=net, zk=zk, tt=tt, tk=tk, sk=sk):
                    with torch.no_grad():
                        net(zk, tt, tk, sk)

                def student(net=net, zk=zk, tt=tt, tk=tk, sk=sk):
                    net(zk, tt, tk, sk).pow(2).mean().backward()
            else:
                pop = PopulationUNet([copy.deepcopy(base) for _ in range(k)]).to(dev)
                net = Denoiser(pop, schedule, "v_prediction")
                call = torch.compile(net) if "compiled" in parts else net
                zo, zs = z_own, z_shared
                if "cl" in parts:  # [K, O, C, kh, kw] with C innermost: each member's weight NHWC
                    for p in pop.population.stacked:
                        if p.dim() == 5:
                            p.data = p.data.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
                    zo = z_own.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
                    zs = z_shared.contiguous(memory_format=torch.channels_last)

                def teacher(call=call, zo=zo):
                    with torch.no_grad():
                        call(zo, t, text, scale)

                def student(call=call, zs=zs):
                    call(zs, t, text, scale).pow(2).mean().backward()

            for name, fn in (("teacher", teacher), ("student", student)):
                ms, warm = timed(fn, args.steps)
                write({"variant": variant, "call": name, "ms": ms, "warmup_s": warm})
            if "profile" in parts and dev.type == "cuda":
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    student()
                    torch.cuda.synchronize()
                rows = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
                total = sum(e.device_time_total for e in rows)
                for e in rows[:15]:
                    write({"variant": variant, "kernel": e.key[:120], "calls": e.count,
                           "ms": e.device_time_total / 1000, "share": e.device_time_total / total})  # fmt: skip
            del net
        except Exception as error:  # a variant that cannot run is a row too
            write({"variant": variant, "error": f"{type(error).__name__}: {str(error)[:300]}"})
        if dev.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
