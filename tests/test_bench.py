"""The benchmark's code paths on a tiny model (no timing is asserted: speed is measured on the GPU
by `make bench`, never in tests)."""

import json

import pytest
import torch

from bsa.experiment.bench import bench_training, parse_combo
from bsa.models.unet import audioldm_unet_config


def test_combinations_parse_and_typos_fail():
    assert parse_combo("bf16+cl+compile") == {
        "bf16": True,
        "tf32": False,
        "channels_last": True,
        "compile": True,
        "compile_mode": None,
        "fused_adamw": True,
        "cuda_graphs": False,
        "compile_regions": False,
        "guard": None,
        "cudnn_benchmark": False,
        "low_precision_norms": False,
        "profile": False,
    }
    assert parse_combo("tf32+foreach") == {
        "bf16": False,
        "tf32": True,
        "channels_last": False,
        "compile": False,
        "compile_mode": None,
        "fused_adamw": False,
        "cuda_graphs": False,
        "compile_regions": False,
        "guard": None,
        "cudnn_benchmark": False,
        "low_precision_norms": False,
        "profile": False,
    }
    regional = parse_combo("bf16+regional")  # only the repeated blocks, compiled in the default mode
    assert regional["compile"] and regional["compile_regions"] and regional["compile_mode"] is None
    assert parse_combo("fp32+ro")["compile_mode"] == "reduce-overhead" and parse_combo("fp32+ro")["compile"]
    assert parse_combo("fp32+graphs")["cuda_graphs"] is True
    assert parse_combo("bf16+graphs+profile")["profile"] is True
    assert parse_combo("bf16+graphs+cudnn")["cudnn_benchmark"] is True
    assert parse_combo("bf16+graphs+lpnorm")["low_precision_norms"] is True
    assert (
        parse_combo("fp32+graphs+guard")["guard"] == "host"
        and parse_combo("bf16+devguard")["guard"] == "device"
    )
    for bad in (
        "fp16",
        "bf16+compiled",
        "cl+bf16",
        "tf32+bf16",
        "fp32+guard+devguard",
        "fp32+devguard+foreach",
    ):
        with pytest.raises(ValueError, match="bad combination"):
            parse_combo(bad)


def test_guarded_training_steps_run_the_guard_as_training_does(monkeypatch):
    """+guard and +devguard time the step with the non-finite guard (host and device decisions):
    the rows are timed, the host's reads happen on +guard only, and +devguard hands its flag to a
    fused AdamW (found_inf) — a foreach AdamW refuses one."""
    import bsa.lit.guard as guard

    reads = []
    agree = guard._all_ranks_agree
    monkeypatch.setattr(guard, "_all_ranks_agree", lambda *a: reads.append(1) or agree(*a))
    cfg = audioldm_unet_config("tiny", 6, 8, (8, 4))
    flags = []
    step = torch.optim.AdamW.step

    def stepped(self, *a, **k):
        flags.append(getattr(self, "found_inf", None))
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", stepped)
    run = lambda combo: bench_training(  # noqa: E731
        torch.device("cpu"), steps=2, models={"tiny": cfg}, batches=(2,), combos=(combo,)
    )
    (host,) = run("fp32+guard")
    steps = len(flags)  # warm-up and timed
    assert "error" not in host and host["samples_per_s"] > 0 and steps >= 5 and len(reads) == 2 * steps
    assert flags == [None] * steps
    reads.clear(), flags.clear()
    (device,) = run("fp32+devguard")
    assert "error" not in device and device["samples_per_s"] > 0 and reads == []
    assert len(flags) == steps and all(f is not None and float(f) == 0.0 for f in flags)


def _each_step(monkeypatch, what) -> list:
    """``what(module)`` at every distillation step the bench takes, in order."""
    from bsa.lit.distill import DistillationModule

    seen, loss = [], DistillationModule.distillation_loss

    def spied(self, *a, **k):
        seen.append(what(self))
        return loss(self, *a, **k)

    monkeypatch.setattr(DistillationModule, "distillation_loss", spied)
    return seen


def test_a_cudnn_combination_steps_with_cudnn_timing_its_algorithms_and_the_setting_is_restored(monkeypatch):
    """+cudnn: the combination's steps run with ``torch.backends.cudnn.benchmark`` on (as
    ``trainer.cudnn_benchmark`` trains), the others with it off; the process's setting comes back."""
    seen = _each_step(monkeypatch, lambda module: torch.backends.cudnn.benchmark)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cfg = audioldm_unet_config("tiny", 6, 8, (8, 4))
    rows = bench_training(
        torch.device("cpu"), steps=1, models={"tiny": cfg}, batches=(2,), combos=("fp32+cudnn", "fp32")
    )
    assert [r["cudnn_benchmark"] for r in rows] == [True, False] and all("error" not in r for r in rows)
    # +cudnn: 3 warm-up steps, the timing's own warm-up and timed step, the FLOP count's (once per
    # model); then fp32's 3 + 1 + 1
    assert seen == [True] * 6 + [False] * 5
    assert torch.backends.cudnn.benchmark is False


def test_an_lpnorm_combination_steps_a_module_whose_group_norms_run_in_the_autocast_dtype(monkeypatch):
    from bsa.models.unet import AutocastDtypeGroupNorm

    seen = _each_step(
        monkeypatch,
        lambda module: {type(n) for n in module.student.modules() if isinstance(n, torch.nn.GroupNorm)},
    )
    cfg = audioldm_unet_config("tiny", 6, 8, (8, 4))
    rows = bench_training(
        torch.device("cpu"), steps=1, models={"tiny": cfg}, batches=(2,), combos=("bf16+lpnorm", "bf16")
    )
    assert [r["low_precision_norms"] for r in rows] == [True, False] and all("error" not in r for r in rows)
    # the FLOP count's step (the 6th) runs on an eager module of the model's own
    assert seen[:5] == [{AutocastDtypeGroupNorm}] * 5 and seen[-5:] == [{torch.nn.GroupNorm}] * 5


def test_training_rows_count_flops_once_and_time_every_combination():
    cfg = audioldm_unet_config("tiny", 6, 8, (8, 4))
    rows = bench_training(
        torch.device("cpu"),
        steps=1,
        models={"tiny": cfg},
        batches=(2,),
        combos=("fp32+compile+foreach", "fp32", "fp32+cl"),
        compile_backend="aot_eager",
    )
    # a compiled (or graphed) first combination hid the step's operators from the FLOP counter: its
    # rows had no FLOPs, or 0 (the GPU's bf16+graphs row), and an MFU of 0
    assert [r["combo"] for r in rows] == ["fp32+compile+foreach", "fp32", "fp32+cl"]
    assert all("error" not in r and r["samples_per_s"] > 0 and r["warmup_s"] > 0 for r in rows), rows
    # one FLOP count per model: achieved TFLOP/s × step time is the same count on every row
    counts = [r["tflops_per_s"] * r["step_ms"] for r in rows]
    assert counts[0] > 0 and counts == pytest.approx([counts[0]] * 3, rel=1e-9)


def test_a_profiled_row_keeps_its_timing_and_adds_its_kernels_by_time_and_kind():
    """+profile: after the timed steps, as many again under torch.profiler (the CPU's operators here,
    the GPU's kernels there); every operator's time in the total, each kind's share of it."""
    cfg = audioldm_unet_config("tiny", 6, 8, (8, 4))
    rows = bench_training(
        torch.device("cpu"), steps=2, models={"tiny": cfg}, batches=(2,), combos=("fp32+profile", "fp32")
    )
    profiled, plain = rows
    assert profiled["profile"] and "kernels" not in plain and plain["samples_per_s"] > 0
    assert sum(profiled["kernel_shares"].values()) == pytest.approx(1.0)
    assert profiled["kernel_shares"]["convolution"] > 0.05  # a UNet's step: its convolutions are seen
    kernels = profiled["kernels"]
    assert [k["ms_per_step"] for k in kernels] == sorted((k["ms_per_step"] for k in kernels), reverse=True)
    assert kernels[0]["ms_per_step"] == pytest.approx(kernels[0]["share"] * profiled["kernel_ms_per_step"])
    assert any(k["kind"] == "convolution" and k["calls"] > 0 for k in kernels)


def test_kernel_kinds_and_their_table_by_hand():
    from bsa.report.bench import kernel_breakdown, kernel_kind, kernel_table

    names = {  # CUDA kernels of a bf16 UNet step (cuDNN 9, torch 2.11) and CPU operators
        "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nchw_tilesize128x128x64": "convolution",
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_cublas": "matmul",
        "void cudnn::engines_precompiled::nchwToNhwcKernel<__nv_bfloat16>": "layout",
        "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<32, 128, 128, 4>>": "attention",
        "fmha_cutlassF_bf16_aligned_64x64_rf_sm80": "attention",
        "void at::native::(anonymous namespace)::RowwiseMomentsCUDAKernel<float>": "normalisation",
        "void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernel<float>": "normalisation",
        "void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>": "optimizer",
        "void at::native::unrolled_elementwise_kernel<direct_copy_kernel_cuda>": "copy/cast",
        "void at::native::vectorized_elementwise_kernel<4, silu_kernel>": "element-wise",
        "void at::native::elementwise_kernel<128, 2, convert_bfloat16_to_float>": "copy/cast",
        "implicit_convolve_sgemm<float, float, 128, 5, 5, 3, 3, 3, 1, false, false, true>": "convolution",
        "aten::mkldnn_convolution": "convolution",
        "aten::native_group_norm": "normalisation",
        "aten::addmm": "matmul",
        "Memset (Device)": "other",
        # seen on an H100, 2026-12-08: ATen's "nocast" element-wise kernels are no casts, cuDNN's
        # attention says fprop too, cuBLAS's GEMMs are nvjet, Inductor's kernels are Triton's
        "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::CUDAFunctor_add<c10::BFloat16> >": "element-wise",
        "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda>": "copy/cast",
        "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_cga1x1x1_kernel0_0": "attention",
        "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_bias_TNT": "matmul",
        "triton_per_fused_native_group_norm_silu_0": "compiled (Triton)",
    }
    assert {n: kernel_kind(n) for n in names} == names
    times = {
        "aten::mkldnn_convolution": (6.0, 10.0),
        "aten::addmm": (3.0, 4.0),
        "aten::native_group_norm": (1.0, 8.0),
    }
    row = {"model": "m", "combo": "bf16+profile", **kernel_breakdown(times, top=2)}
    assert row["kernel_ms_per_step"] == 10.0 and [k["name"] for k in row["kernels"]] == [
        "aten::mkldnn_convolution",
        "aten::addmm",
    ]
    assert row["kernel_shares"] == {"convolution": 0.6, "matmul": 0.3, "normalisation": 0.1}
    assert kernel_table({"training": [row, {"model": "m", "combo": "bf16"}]}).splitlines() == [
        "| model | setting | kernels (ms/step) | convolution | normalisation | matmul |",
        "|---|---|---|---|---|---|",
        "| m | bf16+profile | 10.0 | 60.0 % | 10.0 % | 30.0 % |",
    ]
    # a row written with other kinds is classified again from its kernels' times
    stale = {**row, "kernel_shares": {"other": 1.0}}
    assert kernel_table({"training": [stale]}) == kernel_table({"training": [row]})


def test_sampling_rows_put_compiled_and_eager_side_by_side(monkeypatch, capsys):
    """…and each row is printed as soon as it is measured: a bench stopped by its time limit on the
    GPU had printed only the last student of each setting, and its 25-step rows were lost."""
    from bsa.experiment import bench

    monkeypatch.setattr(bench, "_models", lambda: {"tiny": audioldm_unet_config("tiny", 6, 8, (8, 4))})
    rows = bench.bench_sampling(
        torch.device("cpu"),
        batches=(1,),
        students=(4, 2),
        repeats=1,
        compile_modes=("off", "default", "compiled-loop-graphs"),
        compile_backend="eager",
        teacher_steps=8,
    )
    assert [(r["compile"], r["batch"], r["network_calls"]) for r in rows] == [
        (mode, 1, calls) for mode in ("off", "default", "compiled-loop-graphs") for calls in (16, 4, 2)
    ]
    assert all(r["speedup"] == 1.0 for r in rows if r["network_calls"] == 16)
    assert all(r["seconds_per_clip"] > 0 for r in rows)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert printed == rows


def test_sampling_measures_only_the_models_asked_for(monkeypatch):
    """--models 185m on a sampling bench: the embedded model's rows (and its minutes of compiling)
    are left out; the other model's rows come in the order they always do."""
    from bsa.experiment import bench

    tiny = audioldm_unet_config("tiny", 6, 8, (8, 4))
    monkeypatch.setattr(bench, "_models", lambda: {"small": tiny, "large": tiny})
    kwargs = dict(batches=(1,), students=(2,), repeats=1, teacher_steps=4)
    rows = bench.bench_sampling(torch.device("cpu"), models={"185m"}, **kwargs)
    assert [(r["model"], r["network_calls"]) for r in rows] == [("large", 8), ("large", 2)]
    assert {r["model"] for r in bench.bench_sampling(torch.device("cpu"), **kwargs)} == {"small", "large"}


def test_bench_tables_by_hand(tmp_path):
    from bsa.report.bench import probe_table, training_table

    row = dict(model="m", batch=8, step_ms=10.0, warmup_s=0.5)
    table = training_table(
        {
            "training": [
                {**row, "combo": "fp32", "samples_per_s": 100.0, "mfu_bf16_peak": 0.01},
                {**row, "combo": "fp32+graphs", "samples_per_s": 250.0},
                {**row, "combo": "bf16", "error": "OOM"},  # a failed setting has no row
            ]
        }
    )
    assert table.splitlines()[2:] == [
        "| m | 8 | fp32 | 100 | 10.0 | 1.00× | 0.5 | 1.0 % |",
        "| m | 8 | fp32+graphs | 250 | 10.0 | 2.50× | 0.5 | – |",
    ]
    for name, rates in (
        ("probe_K2.jsonl", [10, 30]),
        ("probe_K2--graphs.jsonl", [50, 50]),
        ("probe_K1.jsonl", [7]),
    ):
        (tmp_path / name).write_text("".join(json.dumps({"samples_per_s": r}) + "\n" for r in rates))
    assert probe_table(tmp_path).splitlines()[2:] == ["| 1 | 7 | – | – |", "| 2 | 40 | 100 | 2.50× |"]


def test_sampling_modes_parse_and_typos_fail():
    from bsa.experiment.bench import parse_sampling_modes

    assert parse_sampling_modes("off, cuda-graphs,reduce-overhead") == (
        "off",
        "cuda-graphs",
        "reduce-overhead",
    )
    with pytest.raises(ValueError, match="unknown \\['cuda-graph'\\]"):
        parse_sampling_modes("off,cuda-graph")


def _sampling_row(model, batch, mode, sampler, s, speedup):
    """A ``bsa bench --what sampling`` row."""
    return dict(model=model, batch=batch, compile=mode, sampler=sampler, seconds_per_clip=s, speedup=speedup)


def test_speed_summary_takes_each_figure_from_the_best_setting_of_the_run():
    from bsa.report.bench import speed_summary

    big, small = "AudioLDM-s-sized (185 M)", "embedded (3.2 M)"
    result = {
        "device": "GPU",
        "date": "d",
        "torch": "t",
        "sampling": [
            _sampling_row(big, 1, "off", "student, 25 steps", 1.2, 8.0),
            _sampling_row(big, 1, "cuda-graphs", "student, 25 steps", 0.12, 9.5),
            _sampling_row(big, 1, "cuda-graphs", "student, 4 steps", 0.02, 60.0),  # not the 25-step row
            _sampling_row(big, 64, "off", "student, 25 steps", 0.027, 12.3),
            _sampling_row(small, 1, "cuda-graphs", "student, 25 steps", 0.01, 7.0),
        ],
        "training": [
            dict(model=small, batch=128, combo="fp32", samples_per_s=1000.0),
            dict(model=small, batch=128, combo="bf16+graphs", samples_per_s=2500.0, bf16=True),
            dict(
                model=big,
                batch=64,
                combo="bf16",
                bf16=True,
                samples_per_s=240.0,
                mfu_bf16_peak=0.12,
                warmup_s=4,
            ),
            dict(
                model=big,
                batch=64,
                combo="bf16+compile",
                bf16=True,
                compile=True,
                samples_per_s=300.0,
                mfu_bf16_peak=0.15,
                warmup_s=150.0,
            ),
            dict(model=big, batch=64, combo="fp32", samples_per_s=999.0),  # not bf16: not the row
        ],
    }
    s = speed_summary(result, ddp2_185m_scaling=1.9)
    assert s["student25_185m_b1_s_per_clip"] == 0.12 and s["speedup_185m_b1"] == 9.5
    assert s["speedup_185m_b64"] == 12.3 and s["student25_embedded_b1_s_per_clip"] == 0.01
    assert s["train_185m_b64_samples_per_s"] == 300.0 and s["train_185m_b64_mfu"] == 0.15
    assert s["compile_warmup_s"] == 150.0 and s["train_embedded_speedup"] == 2.5
    assert s["ddp2_185m_scaling"] == 1.9 and s["settings"]["sampling_185m_b1"] == "cuda-graphs"
    assert speed_summary({"device": "cpu"})["train_embedded_speedup"] is None


def test_bench_from_earlier_runs_takes_each_part_from_the_run_that_measured_it(tmp_path, capsys):
    from bsa.cli.bench import main

    small = "embedded (3.2 M)"
    sampling_run = {
        "device": "H200",
        "date": "2026-11-28",
        "torch": "2.11",
        "sampling": [_sampling_row(small, 1, "cuda-graphs", "student, 25 steps", 0.05, 9.0)],
    }
    training_run = {
        "device": "H200",
        "date": "2026-11-27",
        "torch": "2.11",
        "training": [
            dict(model=small, batch=128, combo="fp32", samples_per_s=1000.0),
            dict(model=small, batch=128, combo="fp32+graphs", samples_per_s=1500.0),
        ],
        # an older sampling part: the later run's replaces it
        "sampling": [_sampling_row(small, 1, "off", "student, 25 steps", 0.3, 8.0)],
    }
    # a later run that trained only the 185 M model: the embedded model's training rows stay (they
    # were dropped, with the embedded speed-up, when a run's training part replaced the whole part)
    large_run = {
        "device": "H200",
        "date": "2026-11-28",
        "torch": "2.11",
        "training": [
            dict(model="AudioLDM-s-sized (185 M)", batch=64, combo="bf16", bf16=True, samples_per_s=300.0)
        ],
    }
    paths = []
    for name, run in (("training", training_run), ("sampling", sampling_run), ("large", large_run)):
        paths.append(str(tmp_path / f"{name}.json"))
        (tmp_path / f"{name}.json").write_text(json.dumps(run))
    out = tmp_path / "speed" / "summary.json"
    assert main(["--from", *paths, "--summary", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["student25_embedded_b1_s_per_clip"] == 0.05 and s["train_embedded_speedup"] == 1.5
    assert s["train_185m_b64_samples_per_s"] == 300.0
    assert s["date"] == "2026-11-27 / 2026-11-28" and s["device"] == "H200"
    assert [(r["file"], r["parts"]) for r in s["runs"]] == [
        (paths[0], ["sampling", "training"]),
        (paths[1], ["sampling"]),
        (paths[2], ["training"]),
    ]
    assert s["command"].startswith("bsa bench --from")
    with pytest.raises(SystemExit):  # --from without --summary: a usage error, nothing written
        main(["--from", *paths])
    assert "--from needs --summary" in capsys.readouterr().err


def test_bench_parts_parse_and_typos_fail():
    from bsa.experiment.bench import bench_parts

    assert bench_parts("all") == {"sampling", "training", "loading"}
    assert bench_parts("sampling, training") == {"sampling", "training"}
    for bad in ("", "samples", "sampling,loadng"):
        with pytest.raises(ValueError, match="--what"):
            bench_parts(bad)


def test_ddp_bench_runs_lightning_ddp_and_only_rank_0_writes(tmp_path):
    """`bsa bench --what ddp`: two CPU processes (gloo) through Lightning's launcher, which starts
    the command again for rank 1; one row, written once, for a world of 2, whose gradient buckets
    travelled in bf16 (`--comm-hook bf16`: the hook DDP itself reports registered)."""
    from _helpers import bsa_cli

    out = tmp_path / "ddp2.json"
    args = ["--what", "ddp", "--models", "embedded", "--devices", "2", "--ddp-batch", "2", "--ddp-steps", "2"]
    args += ["--bucket-mb", "1", "--comm-hook", "bf16"]
    run = bsa_cli("bench", *args, "--out", str(out), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote ") == 1  # rank 1 runs the same command and writes nothing
    written = json.loads(out.read_text())
    assert written["command"] == "bsa bench " + " ".join([*args, "--out", str(out)])
    (row,) = written["ddp"]
    assert (row["devices"], row["batch_per_device"], row["steps"], row["bucket_cap_mb"]) == (2, 2, 2, 1.0)
    assert (row["comm_hook"], row["comm_hook_registered"]) == ("bf16", "bf16_compress_hook")
    assert row["samples_per_s"] == pytest.approx(4 / (row["step_ms"] / 1000))
    bad = bsa_cli("bench", "--what", "ddp", "--models", "embedded,185m", "--out", str(out))
    assert bad.returncode == 2 and "--what ddp measures one model" in bad.stderr


def test_ddp_scaling_is_the_fastest_two_gpu_row_over_its_one_gpu_twin():
    """Two GPUs over one at the same per-GPU batch and bucket size (the pair one speed.sh call
    measures side by side), for the bucket size whose two-GPU row is fastest; the table shows every
    pair."""
    from bsa.report.bench import ddp_scaling, ddp_table, merge_bench_runs

    big = "AudioLDM-s-sized (185 M)"

    def row(devices, batch, rate, bucket=25.0):
        return {
            "model": big,
            "devices": devices,
            "batch_per_device": batch,
            "samples_per_s": rate,
            "bucket_cap_mb": bucket,
            "step_ms": 1000 * batch * devices / rate,
        }

    one, two = {"ddp": [row(1, 64, 270.0), row(1, 32, 250.0)]}, {"ddp": [row(2, 64, 500.0)]}
    merged = merge_bench_runs([one, two])  # one run per device count: their rows together
    assert ddp_scaling(merged) == pytest.approx(500 / 270)
    assert ddp_scaling(merge_bench_runs([{"ddp": [row(1, 32, 250.0)]}, two])) is None  # no 1-GPU row at 64
    assert ddp_scaling({"ddp": [row(2, 64, 500.0)]}) is None
    # bucket 100's 2-GPU row is fastest: it is divided by its own 1-GPU row (280), not by the
    # fastest 1-GPU row of another run (300, bucket 5) nor by bucket 25's (270)
    runs = [
        one,
        two,
        {"ddp": [row(1, 64, 280.0, 100.0), row(2, 64, 532.0, 100.0)]},
        {"ddp": [row(1, 64, 300.0, 5.0), row(2, 64, 420.0, 5.0)]},
    ]
    assert ddp_scaling(merge_bench_runs(runs)) == pytest.approx(532 / 280)
    table = ddp_table(runs).splitlines()
    assert [line.split(" | ")[2] for line in table[2:]] == ["5", "25", "100"]
    assert table[-1].endswith("| 280 | 532 | 241 | 1.90× |")
    # buckets sent in bf16 (trainer.ddp_comm_hook): a pair of their own, over their own 1-GPU run
    bf16 = {
        "ddp": [
            {**row(1, 64, 290.0, 100.0), "comm_hook": "bf16"},
            {**row(2, 64, 551.0, 100.0), "comm_hook": "bf16"},
        ]
    }
    assert ddp_scaling(merge_bench_runs([*runs, bf16])) == pytest.approx(551 / 290)
    table = ddp_table([*runs, bf16]).splitlines()
    assert [line.split(" | ")[2] for line in table[2:]] == ["5", "25", "100", "100 (bf16)"]
    assert table[-2].endswith("| 280 | 532 | 241 | 1.90× |")
    # one call: one 1-GPU run, then 2 GPUs per hook, each over that run; nothing sent (noop, a
    # diagnostic) is a row of the table but never the figure, however fast
    call = {
        "ddp": [
            row(1, 64, 300.0, 200.0),
            row(2, 64, 560.0, 200.0),
            {**row(2, 64, 570.0, 200.0), "comm_hook": "bf16"},
            {**row(2, 64, 598.0, 200.0), "comm_hook": "noop"},
        ]
    }
    assert ddp_scaling(merge_bench_runs([*runs, bf16, call])) == pytest.approx(570 / 300)
    table = ddp_table([*runs, bf16, call]).splitlines()
    assert [line.split(" | ")[2] for line in table[2:]] == [
        *("5", "25", "100", "100 (bf16)"),
        *("200", "200 (bf16)", "200 (nothing sent)"),
    ]
    assert table[-1].endswith("| 300 | 598 | 214 | 1.99× |")


def test_merged_runs_take_each_models_sampling_rows_from_the_last_run_that_sampled_it():
    """A later run that sampled only the embedded model (a new mode) replaces the embedded rows and
    keeps the 185 M rows of the run before; each speed-up stays against its own run's teacher."""
    from bsa.report.bench import merge_bench_runs, speed_summary

    def rows(model, student, speedup, mode):
        return [
            {
                "model": model,
                "batch": 1,
                "compile": mode,
                "sampler": "student, 25 steps",
                "seconds_per_clip": student,
                "speedup": speedup,
            },
        ]

    first = {
        "sampling": rows("embedded (3.2 M)", 0.036, 4.0, "loop-graphs")
        + rows("AudioLDM-s (185 M)", 0.156, 8.6, "loop-graphs")
    }
    second = {"sampling": rows("embedded (3.2 M)", 0.016, 8.6, "compiled-loop-graphs")}
    merged = merge_bench_runs([first, second])
    assert [(r["model"], r["seconds_per_clip"]) for r in merged["sampling"]] == [
        ("embedded (3.2 M)", 0.016),
        ("AudioLDM-s (185 M)", 0.156),
    ]
    figures = speed_summary(merged)
    assert figures["student25_embedded_b1_s_per_clip"] == 0.016
    assert figures["settings"]["sampling_embedded_b1"] == "compiled-loop-graphs"
    assert figures["student25_185m_b1_s_per_clip"] == 0.156 and figures["speedup_185m_b1"] == 8.6


KILLED_BENCH = """
import sys, time
from bsa.experiment import bench
from bsa.models.unet import audioldm_unet_config

bench._models = lambda: {"tiny": audioldm_unet_config("tiny", 6, 8, (8, 4))}
timed, calls = bench._timed, []
def slow_after_three(fn, device, repeats):
    calls.append(1)
    if len(calls) > 3:  # the fourth row never ends: the kill comes here
        time.sleep(120)
    return timed(fn, device, 1)
bench._timed = slow_after_three
bench.run_bench(sys.argv[1], "sampling", [], {"embedded"}, 1, [], ("off",), command="killed bench")
"""


def test_a_bench_killed_by_its_time_limit_keeps_every_row_measured_in_its_file(tmp_path):
    """`timeout` ended a GPU bench inside its last setting: the rows were in the log, but --out was
    written only at the end of the part, so `bsa bench --from` had nothing to read. Every row now
    lands in the file as it is measured (one rename), so a kill leaves valid JSON with those rows."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "bench.json"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BENCH, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and len(json.loads(out.read_text())["sampling"]) == 3:
                break
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
    finally:
        proc.kill()
    result = json.loads(out.read_text())
    assert proc.returncode != 0
    assert [r["network_calls"] for r in result["sampling"]] == [400, 100, 50]
    assert result["command"] == "killed bench" and result["device"] and result["torch"]
    printed = [json.loads(line) for line in proc.stdout.read().splitlines() if line.startswith("{")]
    assert printed == result["sampling"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # no temporary left beside it
