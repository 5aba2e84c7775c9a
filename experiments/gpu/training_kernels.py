"""Where the 185 M distillation step's time goes on the GPU (issue "Speed at AudioLDM scale": 270
samples/s at batch 64 in bf16 with CUDA graphs, 14 % of the bf16 peak; the done-when asks 400).
The step ``bsa bench --what training`` times (two teacher calls + the student's forward and backward +
fused AdamW, bf16 autocast), eager so that the profiler sees each kernel, for each ``--variants``
entry (``bf16``, ``bf16+lpnorm``: GroupNorm in bf16, ``+cudnn``: cuDNN timing its algorithms); per
variant the kernels by total GPU time (``torch.profiler``) and their share by kind: convolution,
matmul, attention, normalisation, element-wise, copies/casts, optimizer. One JSON line per row, to
``--out``.
  python3 experiments/gpu/training_kernels.py --out $OUT/training_kernels.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bsa.experiment.bench import AUDIOLDM_S, _progressive_module

KINDS = (  # first match wins: a kernel's kind from its name
    ("attention", ("flash", "fmha", "attention", "efficient_attention", "softmax")),
    ("convolution", ("conv", "implicit_gemm", "wgrad", "dgrad", "cudnn", "xmma", "sm90_xmma")),
    ("normalisation", ("group_norm", "groupnorm", "layer_norm", "layernorm", "batch_norm", "welford")),
    ("matmul", ("gemm", "cutlass", "sm90", "ampere", "cublas", "matmul")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("copies/casts", ("copy", "cast", "convert", "transpose", "nchwtonhwc", "nhwctonchw")),
    ("element-wise", ("elementwise", "vectorized", "reduce", "silu", "gelu", "mul", "add")),
)


def kind(name: str) -> str:
    low = name.lower()
    return next((k for k, words in KINDS if any(w in low for w in words)), "other")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="steps profiled, after 3 warm-up steps")
    parser.add_argument("--variants", default="bf16,bf16+lpnorm,bf16+cudnn+lpnorm")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default="training_kernels.jsonl")
    args = parser.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the CPU: a smoke run of the script
    activity = (
        torch.profiler.ProfilerActivity.CUDA if dev.type == "cuda" else torch.profiler.ProfilerActivity.CPU
    )
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    cfg = AUDIOLDM_S
    lat = torch.randn(args.batch, cfg["in_channels"], *cfg["sample_size"], device=dev)
    text = torch.randn(args.batch, cfg["projection_class_embeddings_input_dim"], device=dev)
    stamp = {"batch": args.batch, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
             "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}  # fmt: skip

    def write(row):
        row = {**row, **stamp}
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")

    for variant in args.variants.split(","):
        parts = set(variant.split("+"))
        torch.backends.cudnn.benchmark = "cudnn" in parts
        m = _progressive_module(cfg, low_precision_norms="lpnorm" in parts).to(dev)
        opt = torch.optim.AdamW(m.student.parameters(), lr=1e-4, fused=dev.type == "cuda" or None)

        def step(m=m, opt=opt):
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                loss, _ = m.distillation_loss(lat, text)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for _ in range(3):
            step()
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        wall_ms = 1000 * (time.perf_counter() - start) / args.steps
        with torch.profiler.profile(activities=[activity]) as prof:
            for _ in range(args.steps):
                step()
            sync()
        events = [
            e
            for e in prof.key_averages()
            if (e.device_time_total if dev.type == "cuda" else e.self_cpu_time_total) > 0
        ]
        total = sum((e.device_time_total if dev.type == "cuda" else e.self_cpu_time_total) for e in events)
        by_kind: dict[str, float] = {}
        for e in events:
            by_kind[kind(e.key)] = by_kind.get(kind(e.key), 0.0) + (
                e.device_time_total if dev.type == "cuda" else e.self_cpu_time_total
            )
        write({"variant": variant, "wall_ms_per_step": wall_ms, "gpu_ms_per_step": total / 1000 / args.steps,
               "share_by_kind": {k: v / total for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])}})  # fmt: skip
        for e in sorted(
            events, key=lambda e: -(e.device_time_total if dev.type == "cuda" else e.self_cpu_time_total)
        )[: args.top]:
            write({"variant": variant, "kernel": e.key[:160], "kind": kind(e.key), "calls": e.count // args.steps,
                   "ms_per_step": (e.device_time_total if dev.type == "cuda" else e.self_cpu_time_total) / 1000 / args.steps, "share": (e.device_time_total if dev.type == "cuda" else e.self_cpu_time_total) / total})  # fmt: skip
        del m, opt
        if dev.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
