"""Benchmarks (``bsa bench --out runs/bench.json``): sampling speed of the teacher against its
students, and distillation-step throughput, side by side in one run (GPU for absolute numbers).

Models: the embedded teacher's architecture (3.2 M, latents 8×64×16) and an AudioLDM-s-sized UNet
(185 M, latents 8×256×16 = 10.24 s), random weights (speed does not depend on them). Sampling
times cover the denoising loop only (VAE and vocoder excluded), bf16 autocast, eager mode.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

AUDIOLDM_S = dict(
    sample_size=[256, 16],
    in_channels=8,
    out_channels=8,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    block_out_channels=[128, 256, 384, 640],
    layers_per_block=2,
    cross_attention_dim=[128, 256, 384, 640],
    attention_head_dim=8,
    class_embed_type="simple_projection",
    projection_class_embeddings_input_dim=512,
    class_embeddings_concat=True,
)


def _models():
    from bsa.models.assets import resolve_model_path
    from bsa.models.unet import load_unet

    embedded = dict(load_unet(resolve_model_path("embedded:teacher")).config)
    return {"embedded (3.2 M)": embedded, "AudioLDM-s-sized (185 M)": AUDIOLDM_S}


def _timed(fn, device, repeats: int) -> float:
    import torch

    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _report(rows: list[dict], on_row) -> None:
    """The row just measured: printed, and handed on (``on_row(rows)``) while the run goes on."""
    print(json.dumps(rows[-1]), flush=True)
    if on_row is not None:
        on_row(rows)


def write_bench(out: Path, result: dict) -> None:
    """``out`` replaced in one rename: a reader (or a kill) sees the previous rows or the new ones."""
    from bsa.durable import replace_durably, temporary_path

    tmp = temporary_path(out)
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    replace_durably(tmp, out)


def bench_sampling(
    device,
    batches=(1, 64),
    students=(100, 50, 25, 8, 4, 2, 1),
    repeats=2,
    compile_modes=("off",),
    compile_backend="inductor",
    teacher_steps=200,
    on_row=None,
    models=None,
) -> list[dict]:
    """Seconds per clip of the teacher (``teacher_steps`` + CFG) and its students, per model (those of
    ``models``' keys, e.g. {"185m"}; None: every one), batch and
    ``compile_modes`` entry ("off" = eager; "cuda-graphs" = the denoiser calls replayed from CUDA
    graphs without compiling, ``eval.cuda_graphs``; "loop-graphs" = the whole sampling loop replayed
    as one graph, ``GraphedLoop``; "compiled-loop-graphs" = the same with the denoisers compiled
    by Inductor first (fused kernels, fewer of them, inside the one graph: at batch 1 the graphed
    3.2 M UNet's time is its ~1.4 ms of kernels); "reduce-overhead" = compiled into CUDA graphs,
    what ``eval.compile`` does), each row with its speed-up over the teacher of the
    same mode; compilation happens in the untimed warm-up. Each row is printed as it is measured
    and ``on_row(rows)`` called (``run_bench`` writes its file there): a time limit loses none."""
    import torch
    from diffusers import UNet2DConditionModel

    from bsa.diffusion import audioldm_schedule, sample, step_grid
    from bsa.models.denoiser import Denoiser
    from bsa.models.graphs import GraphedCall, GraphedLoop
    from bsa.models.unet import with_guidance_input

    schedule, rows = audioldm_schedule(), []
    for (name, cfg), key in zip(_models().items(), BENCH_MODELS, strict=False):  # a test may give one
        if models is not None and key not in models:
            continue
        teacher_unet = UNet2DConditionModel(**cfg).to(device).eval()
        teacher = Denoiser(teacher_unet, schedule)
        student = Denoiser(with_guidance_input(teacher_unet).to(device).eval(), schedule)
        dim, shape = cfg["projection_class_embeddings_input_dim"], (cfg["in_channels"], *cfg["sample_size"])
        for mode, b in ((m, b) for m in compile_modes for b in batches):
            if mode in ("off", "loop-graphs"):
                teacher_call, student_call = teacher, student
            elif mode == "cuda-graphs":
                teacher_call, student_call = GraphedCall(teacher), GraphedCall(student)
            else:
                torch._dynamo.reset()
                compiled_mode = None if mode in ("default", "compiled-loop-graphs") else mode
                opts = {"mode": compiled_mode, "backend": compile_backend}
                teacher_call, student_call = (torch.compile(m.forward, **opts) for m in (teacher, student))
            noise = torch.randn(b, *shape, device=device)
            text, null = torch.randn(b, dim, device=device), torch.zeros(dim, device=device)
            w = torch.full((b,), 2.5, device=device)

            def run(model, steps, guided, noise=noise, text=text, null=null, w=w, mode=mode):
                cpu_grid = step_grid(steps)  # a captured loop reads its grid without a device sync
                grid = cpu_grid.to(device)  # the others' as the pipeline's
                if mode in ("loop-graphs", "compiled-loop-graphs"):
                    loop = GraphedLoop(
                        (
                            lambda z0, c: sample(
                                model, z0, cpu_grid, schedule, cond=c, null_cond=null, guidance_scale=2.5
                            )
                        )
                        if guided
                        else (
                            lambda z0, c, w_: sample(
                                lambda z_, t_: model(z_, t_, c, w_), z0, cpu_grid, schedule
                            )
                        )
                    )
                    inputs = (noise, text) if guided else (noise, text, w)

                    def go_loop():
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                            loop(*inputs)

                    return go_loop

                def go():
                    with (
                        torch.no_grad(),
                        torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"),
                    ):
                        if guided:
                            sample(
                                model, noise, grid, schedule, cond=text, null_cond=null, guidance_scale=2.5
                            )
                        else:
                            sample(lambda z_, t_: model(z_, t_, text, w), noise, grid, schedule)

                return go

            t_teacher = _timed(run(teacher_call, teacher_steps, True), device, repeats)
            rows.append(
                {
                    "model": name,
                    "compile": mode,
                    "batch": b,
                    "sampler": f"teacher, {teacher_steps} steps + CFG",
                    "network_calls": 2 * teacher_steps,
                    "seconds_per_clip": t_teacher / b,
                    "speedup": 1.0,
                }
            )
            _report(rows, on_row)
            for n in students:
                t = _timed(run(student_call, n, False), device, repeats)
                rows.append(
                    {
                        "model": name,
                        "compile": mode,
                        "batch": b,
                        "sampler": f"student, {n} steps",
                        "network_calls": n,
                        "seconds_per_clip": t / b,
                        "speedup": t_teacher / t,
                    }
                )
                _report(rows, on_row)
        del teacher_unet, teacher, student
    return rows


COMBOS = ("fp32", "tf32", "bf16", "bf16+cl", "fp32+compile", "bf16+compile")
"""Training settings measured by default: precision (fp32; tf32 = fp32 with TF32 matmuls,
``trainer.matmul_precision=high``; bf16 autocast), channels_last (cl) and torch.compile of the
denoiser calls (``trainer.compile``: DistillationModule's compiled calls). AdamW is fused unless
``+foreach`` asks for the multi-tensor kernel (what ``bsa distill`` uses: Lightning refuses a fused
AdamW with gradient clipping under mixed precision); ``+graphs`` replays the denoiser calls from
CUDA graphs (``trainer.cuda_graphs``); ``+ro`` compiles them in "reduce-overhead" mode
(``trainer.compile=reduce-overhead``: fused kernels, replayed from CUDA graphs); ``+regional``
compiles only the UNets' repeated transformer and resnet blocks (``trainer.compile_regions``);
``+regional+graphs`` only the student's, the teacher's calls replayed from CUDA graphs; ``+guard``
adds the non-finite guard as a training step runs it on the host (the loss and the gradients' norms
read there: two waits on the GPU a step), ``+devguard`` as it runs with a fused AdamW on one GPU
(decided on the device, ``found_inf``: no wait) — the bench's steps have no guard otherwise;
``+cudnn`` lets cuDNN time its convolution algorithms for each shape (``trainer.cudnn_benchmark``,
on in the GPU preset; its timing falls in the warm-up) — cuDNN's heuristic choice otherwise;
``+lpnorm`` computes GroupNorm in the autocast dtype (``trainer.low_precision_norms``)."""


COMBO_PARTS = (
    *("cl", "compile", "ro", "regional", "foreach", "graphs"),
    *("cudnn", "lpnorm", "profile", "guard", "devguard"),
)
COMBO_CONFLICTS = ({"guard", "devguard"}, {"devguard", "foreach"})  # devguard needs a fused AdamW


def parse_combo(combo: str) -> dict:
    parts = combo.split("+")
    options = set(parts[1:])
    if (
        parts[0] not in ("fp32", "tf32", "bf16")
        or not options <= set(COMBO_PARTS)
        or any(pair <= options for pair in COMBO_CONFLICTS)
    ):
        raise ValueError(
            f"bad combination {combo!r}: fp32, tf32 or bf16, then optionally "
            f"{', '.join('+' + part for part in COMBO_PARTS)} (+guard or +devguard; +devguard not with "
            "+foreach: it needs a fused AdamW)"
        )
    return {
        "bf16": parts[0] == "bf16",
        "tf32": parts[0] == "tf32",
        "channels_last": "cl" in parts,
        "compile": "compile" in parts or "ro" in parts or "regional" in parts,
        # regional compilation: only the UNets' repeated blocks (trainer.compile_regions)
        "compile_regions": "regional" in parts,
        # torch.compile's "reduce-overhead" mode: fused kernels replayed from CUDA graphs
        "compile_mode": "reduce-overhead" if "ro" in parts else None,
        "fused_adamw": "foreach" not in parts,
        "cuda_graphs": "graphs" in parts,
        # the non-finite guard: None (none), "host" or "device" (bsa.lit.guard)
        "guard": "host" if "guard" in parts else "device" if "devguard" in parts else None,
        # cuDNN times its convolution algorithms per shape (trainer.cudnn_benchmark)
        "cudnn_benchmark": "cudnn" in parts,
        # GroupNorm in the autocast dtype, not float32 (trainer.low_precision_norms)
        "low_precision_norms": "lpnorm" in parts,
        # after the timed steps, as many again under torch.profiler: the row's kernels by time
        "profile": "profile" in parts,
    }


def parse_sampling_modes(text: str) -> tuple[str, ...]:
    """``--sampling-compile``: comma-separated modes, each off, cuda-graphs, loop-graphs,
    compiled-loop-graphs or a torch.compile mode."""
    from bsa.config import COMPILE_MODES

    graphs = ("cuda-graphs", "loop-graphs", "compiled-loop-graphs")
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in (*COMPILE_MODES, *graphs)]
    if unknown:
        raise ValueError(
            f"unknown {unknown}; expected {', '.join(graphs)} or one of {', '.join(COMPILE_MODES)}"
        )
    return modes


def bench_training(
    device,
    steps: int = 10,
    models: dict | None = None,
    batches=(128, 16),
    combos=COMBOS,
    compile_backend: str = "inductor",
    on_row=None,
) -> list[dict]:
    """Distillation-step throughput (samples/s): one progressive step = 2 teacher calls (w-conditioned)
    + student forward/backward + AdamW, for each combination (``COMBOS``). ``warmup_s`` is the
    time of the first 3 steps: torch.compile's compilation is paid there, once per stage."""
    import torch

    rows, flops, cudnn_benchmark = [], {}, torch.backends.cudnn.benchmark
    for (name, cfg), batch in zip((models or _models()).items(), batches, strict=True):
        for combo_name in combos:
            c = parse_combo(combo_name)
            torch.set_float32_matmul_precision("high" if c["tf32"] else "highest")
            torch.backends.cudnn.benchmark = c["cudnn_benchmark"]
            torch._dynamo.reset()  # each combination compiles from scratch, as a fresh stage would
            m = _progressive_module(
                cfg,
                compile={"mode": c["compile_mode"], "backend": compile_backend} if c["compile"] else None,
                cuda_graphs=c["cuda_graphs"],
                compile_regions=c["compile_regions"],
                low_precision_norms=c["low_precision_norms"],
            ).to(device)
            if c["channels_last"]:  # both UNets' weights (compilation and graph capture come later)
                m.to(memory_format=torch.channels_last)
            # fused on a GPU, and wherever the guard decides on the device (found_inf needs it)
            fused = c["fused_adamw"] and (device.type == "cuda" or c["guard"] == "device")
            opt = torch.optim.AdamW(m.student.parameters(), lr=1e-4, fused=fused or None, foreach=not fused)
            if c["guard"]:
                m.nonfinite_on_device = c["guard"] == "device"
            shape = (batch, cfg["in_channels"], *cfg["sample_size"])
            lat = torch.randn(shape, device=device)
            if c["channels_last"]:
                lat = lat.to(memory_format=torch.channels_last)
            text = torch.randn(batch, cfg["projection_class_embeddings_input_dim"], device=device)

            def step(m=m, opt=opt, lat=lat, text=text, bf16=c["bf16"], guard=c["guard"]):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss, _ = m.distillation_loss(lat, text)
                if guard and m.guard(loss) is None:  # as training_step returns it
                    return
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if guard:
                    m.on_before_optimizer_step(opt)  # as Lightning calls it before the step
                opt.step()

            combo = {"model": name, "batch": batch, "combo": combo_name, **c}
            try:
                start = time.perf_counter()
                for _ in range(3):
                    step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                warmup = time.perf_counter() - start
                t = _timed(lambda: [step() for _ in range(steps)], device, 1) / steps
                key = (name, batch)
                if key not in flops:  # model FLOPs of one step, counted once per model, on an eager module
                    flops[key] = step_flops(cfg, lat, text)
                row = {**combo, "samples_per_s": batch / t, "step_ms": 1000 * t, "warmup_s": warmup}
                row["tflops_per_s"] = flops[key] / t / 1e12
                row["mfu_bf16_peak"] = flops[key] / t / peak_flops(device)
                if c["profile"]:  # outside the timed steps
                    row |= kernel_profile(step, steps, device)
                rows.append(row)
            except Exception as e:  # a failing combination is reported, not hidden
                rows.append({**combo, "error": f"{type(e).__name__}: {str(e)[:200]}"})
            _report(rows, on_row)
            del m, opt
            if device.type == "cuda":
                torch.cuda.empty_cache()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = cudnn_benchmark
    return rows


def kernel_profile(step, steps: int, device, top: int = 20) -> dict:
    """``steps`` calls of ``step`` under ``torch.profiler``: the GPU's kernels (the CPU's operators,
    by self time, on a CPU) with their time per step, the ``top`` of them by time and every kind's share
    (:func:`bsa.report.bench.kernel_breakdown`), and the total per step."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bsa.report.bench import kernel_breakdown

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    times = {}
    for e in prof.key_averages():
        us = e.device_time_total if cuda else e.self_cpu_time_total
        if us > 0:
            times[e.key] = (us / 1000 / steps, e.count / steps)
    return kernel_breakdown(times, top)


def step_flops(cfg: dict, lat, text) -> int:
    """FLOPs of one distillation step's forward and backward (torch's ``FlopCounterMode``) on an eager
    module of ``cfg``: a compiled or graph-replayed step hides its operators from the counter (the
    bf16+graphs row of 2026-11-28 counted 0 FLOPs and reported an MFU of 0)."""
    from torch.utils.flop_counter import FlopCounterMode

    m = _progressive_module(cfg).to(lat.device)
    with FlopCounterMode(display=False) as counter:
        loss, _ = m.distillation_loss(lat, text)
        loss.backward()
    del m
    return counter.get_total_flops()


def _progressive_module(cfg: dict, **module_kwargs):
    """What the training benchmarks step: a progressive DistillationModule (50 student steps) on
    two w-conditioned UNets of ``cfg`` with random weights drawn from seed 0, on the CPU."""
    import torch
    from diffusers import UNet2DConditionModel

    from bsa.diffusion import audioldm_schedule
    from bsa.lit.distill import DistillationModule
    from bsa.models.denoiser import Denoiser
    from bsa.models.unet import with_guidance_input

    torch.manual_seed(0)
    schedule = audioldm_schedule()
    teacher, student = (
        Denoiser(with_guidance_input(UNet2DConditionModel(**cfg)), schedule) for _ in range(2)
    )
    return DistillationModule(
        teacher,
        student,
        torch.zeros(cfg["projection_class_embeddings_input_dim"]),
        mode="progressive",
        student_steps=50,
        **module_kwargs,
    )


def bench_ddp(
    devices: int,
    model: str = "AudioLDM-s-sized (185 M)",
    batch: int = 64,
    steps: int = 20,
    warmup: int = 5,
    bucket_cap_mb: float | None = None,
    comm_hook: str = "none",
    precision: str | None = None,
    accelerator: str = "auto",
) -> dict | None:
    """Lightning DDP throughput of one progressive distillation step of ``model`` (random weights)
    on ``devices`` GPUs (CPU processes on the CPU), ``batch`` per device: samples/s of the whole
    world over ``steps`` timed steps after ``warmup``, each step synchronised. DDP as ``bsa distill``
    runs it (Lightning's subprocess launcher: the command is started again for each other rank),
    with ``bucket_cap_mb`` gradient buckets (None: ``trainer.ddp_bucket_mb``'s default), the
    gradients as views of the buckets (no copy) and the buckets all-reduced as ``comm_hook`` says
    (``trainer.ddp_comm_hook``; the row names the hook DDP itself reports registered);
    bf16 autocast on GPUs (``precision``), fp32 on the CPU.
    ``devices=1`` is the one-device reference (no DDP). The row on global rank 0, None elsewhere."""
    import lightning.pytorch as pl
    import torch

    from bsa.callbacks.timing import StepTimer
    from bsa.config import TrainerConfig
    from bsa.experiment.build import (
        ddp_callbacks,
        ddp_strategy,
        quiet_lightning,
        signal_plugins_and_callbacks,
    )

    quiet_lightning()
    bucket_cap_mb = TrainerConfig.ddp_bucket_mb if bucket_cap_mb is None else bucket_cap_mb
    cfg = _models()[model]
    precision = precision or ("bf16-mixed" if torch.cuda.is_available() else "32-true")
    module = _progressive_module(cfg)
    n = batch * devices * (steps + warmup)
    g = torch.Generator().manual_seed(0)
    data = [
        {"latents": z, "text_emb": c}
        for z, c in zip(
            torch.randn(n, cfg["in_channels"], *cfg["sample_size"], generator=g),
            torch.randn(n, cfg["projection_class_embeddings_input_dim"], generator=g),
            strict=True,
        )
    ]
    timer = StepTimer(warmup)
    plugins, signal_callbacks = signal_plugins_and_callbacks(devices)  # as training runs them
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=ddp_strategy(devices, bucket_cap_mb),
        precision=precision,
        max_steps=steps + warmup,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*ddp_callbacks(devices, comm_hook), *signal_callbacks, timer],
        plugins=plugins,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False))
    if trainer.global_rank != 0:
        return None
    step = sum(timer.seconds) / len(timer.seconds)
    return {
        "model": model,
        "devices": trainer.world_size,
        "batch_per_device": batch,
        "precision": precision,
        "bucket_cap_mb": bucket_cap_mb,
        "comm_hook": comm_hook,
        "comm_hook_registered": timer.comm_hook,
        "steps": len(timer.seconds),
        "step_ms": 1000 * step,
        "samples_per_s": batch * trainer.world_size / step,
    }


def peak_flops(device) -> float:
    """Dense bf16 tensor-core peak of the GPU (the MFU denominator): H100/H200 SXM 989 TFLOP/s."""
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return 989e12 if ("H100" in name or "H200" in name) else float("nan")


def bench_loading(cfg_items: list[str], batch: int, batches: int = 200) -> dict:
    """Batches/s of the real latent stream (LatentDataModule, its worker processes) without a
    model: compared with the training step rate it says whether loading can starve the GPU."""
    from bsa.config import load_config
    from bsa.data.datamodule import LatentDataModule
    from bsa.experiment.build import build_expected_identity

    files = [i for i in cfg_items if "=" not in i]
    cfg = load_config(files, [i for i in cfg_items if "=" in i])
    dm = LatentDataModule(
        cfg.data.cache_dir,
        batch,
        expected=build_expected_identity(cfg),
        num_workers=min(cfg.data.num_workers, 4),
        seed=0,
    )
    dm.setup()
    it = iter(dm.train_dataloader())
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = time.perf_counter() - start
    return {
        "batch": batch,
        "workers": min(cfg.data.num_workers, 4),
        "batches_per_s": batches / seconds,
        "samples_per_s": batches * batch / seconds,
    }


BENCH_PARTS = ("sampling", "training", "loading")


def bench_parts(what: str) -> set[str]:
    """``--what``: all, or some of sampling, training, loading, comma-separated; or ddp alone (its
    other ranks start the command again, so nothing else may run in it)."""
    if what == "ddp":
        return {"ddp"}
    parts = set(BENCH_PARTS) if what == "all" else {p.strip() for p in what.split(",") if p.strip()}
    if not parts or not parts <= set(BENCH_PARTS):
        raise ValueError(
            f"--what {what!r}: all, or some of {', '.join(BENCH_PARTS)} (comma-separated), or ddp alone"
        )
    return parts


BENCH_MODELS = ("embedded", "185m")


def parse_bench_request(what: str, combos: str, models: str, sampling_compile: str):
    """``bsa bench``'s --what, --combos, --models and --sampling-compile checked and parsed:
    (combos, models, sampling modes); a ValueError names the bad one."""
    combo_list = [c.strip() for c in combos.split(",") if c.strip()]
    model_set = {m.strip() for m in models.split(",") if m.strip()}
    if not model_set or not model_set <= set(BENCH_MODELS):
        raise ValueError(
            f"--models: unknown {sorted(model_set - set(BENCH_MODELS))}; expected embedded, 185m"
        )
    if bench_parts(what) == {"ddp"} and len(model_set) != 1:
        raise ValueError("--what ddp measures one model: --models embedded or --models 185m")
    for c in combo_list:
        parse_combo(c)
    return combo_list, model_set, parse_sampling_modes(sampling_compile)


def run_bench(
    out: str | Path,
    what: str,
    combos: list[str],
    models: set[str],
    batch_185m: int,
    config: list[str],
    sampling_compile: tuple[str, ...] = ("off",),
    summary: str | Path | None = None,
    command: str = "",
    ddp: dict | None = None,
) -> dict | None:
    """Run the benchmarks ``what`` asks for (all, or some of sampling, training, loading joined by
    commas), writing ``out`` after each row (device, torch version and date inside, one rename a
    time); returns the result. With ``summary``
    also the speed issue's figures of this run there (:func:`bsa.report.bench.speed_summary`),
    ``command`` recorded."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = bench_parts(what)
    if "ddp" in parts:  # one model, its per-GPU batch; only global rank 0 writes
        model = next(name for name, key in zip(_models(), BENCH_MODELS, strict=True) if key in models)
        row = bench_ddp(model=model, **(ddp or {}))
        if row is None:
            return None
        result["ddp"] = [row]
        write_bench(out, result)

    def partial(key):  # the part's rows so far written after each one: a time limit keeps them
        return lambda rows: write_bench(out, {**result, key: rows})

    if "sampling" in parts:
        result["sampling"] = bench_sampling(
            device, compile_modes=sampling_compile, on_row=partial("sampling"), models=models
        )
        write_bench(out, result)
    if "training" in parts:
        chosen, batches = [], []
        for (name, cfg), batch, key in zip(_models().items(), (128, batch_185m), BENCH_MODELS, strict=True):
            if key in models:
                chosen.append((name, cfg))
                batches.append(batch)
        result["training"] = bench_training(
            device, models=dict(chosen), batches=batches, combos=combos, on_row=partial("training")
        )
        write_bench(out, result)
    if "loading" in parts:
        result["loading"] = bench_loading(config, batch=128)
        print(json.dumps(result["loading"]), flush=True)
    write_bench(out, result)
    if summary:
        from bsa.report.bench import save_speed_summary

        save_speed_summary(result, summary, command=command, bench=str(out))
    return result
