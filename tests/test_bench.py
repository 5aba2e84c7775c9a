"""The benchmark's code paths on a tiny model (no timing is asserted: speed is measured on the GPU
by `make bench`, never in tests)."""

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
        "fused_adamw": True,
        "cuda_graphs": False,
    }
    assert parse_combo("tf32+foreach") == {
        "bf16": False,
        "tf32": True,
        "channels_last": False,
        "compile": False,
        "fused_adamw": False,
        "cuda_graphs": False,
    }
    assert parse_combo("fp32+graphs")["cuda_graphs"] is True
    for bad in ("fp16", "bf16+compiled", "cl+bf16", "tf32+bf16"):
        with pytest.raises(ValueError, match="bad combination"):
            parse_combo(bad)


def test_training_rows_count_flops_once_and_time_every_combination():
    cfg = audioldm_unet_config("tiny", 6, 8, (8, 4))
    rows = bench_training(
        torch.device("cpu"),
        steps=1,
        models={"tiny": cfg},
        batches=(2,),
        combos=("fp32", "fp32+cl", "fp32+compile+foreach"),
        compile_backend="aot_eager",
    )
    assert [r["combo"] for r in rows] == ["fp32", "fp32+cl", "fp32+compile+foreach"]
    assert all("error" not in r and r["samples_per_s"] > 0 and r["warmup_s"] > 0 for r in rows), rows
    # one FLOP count per model: achieved TFLOP/s × step time is the same count on every row
    counts = [r["tflops_per_s"] * r["step_ms"] for r in rows]
    assert counts[0] > 0 and counts == pytest.approx([counts[0]] * 3, rel=1e-9)


def test_sampling_rows_put_compiled_and_eager_side_by_side(monkeypatch):
    from bsa.experiment import bench

    monkeypatch.setattr(bench, "_models", lambda: {"tiny": audioldm_unet_config("tiny", 6, 8, (8, 4))})
    rows = bench.bench_sampling(
        torch.device("cpu"),
        batches=(1,),
        students=(4, 2),
        repeats=1,
        compile_modes=("off", "default"),
        compile_backend="eager",
        teacher_steps=8,
    )
    assert [(r["compile"], r["batch"], r["network_calls"]) for r in rows] == [
        (mode, 1, calls) for mode in ("off", "default") for calls in (16, 4, 2)
    ]
    assert all(r["speedup"] == 1.0 for r in rows if r["network_calls"] == 16)
    assert all(r["seconds_per_clip"] > 0 for r in rows)
