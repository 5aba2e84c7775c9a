"""Shared fixtures: float64 math, fresh random inputs per test (seeded by the test's name)."""

from __future__ import annotations

import os
import zlib

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def gen(request: pytest.FixtureRequest) -> torch.Generator:
    """A torch.Generator seeded from the test id: varied across tests, reproducible per test."""
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def schedule():
    from bsa.diffusion import audioldm_schedule

    return audioldm_schedule()


@pytest.fixture(scope="session")
def debug_env(tmp_path_factory):
    """A complete tiny embedded world built through the real CLIs on experiments/debug.yaml:
    data → VAE → latent cache → teacher → evaluator, under a temporary folder. Returns the
    ``key=value`` overrides that point a command at it (and ``root``)."""
    import subprocess
    import sys
    from pathlib import Path

    root = tmp_path_factory.mktemp("debug-env")
    overrides = [
        f"paths.output_root={root}/runs",
        f"data.root={root}/data",
        f"data.cache_dir={root}/cache",
        f"models.vae={root}/vae",
        f"models.teacher={root}/teacher",
        f"models.evaluator={root}/evaluator",
        f"train.vae.out={root}/vae",
        f"train.teacher.out={root}/teacher",
        f"train.evaluator.out={root}/evaluator",
    ]
    repo = Path(__file__).resolve().parents[1]
    for argv in (
        ["bsa.cli.data"],
        ["bsa.cli.train", "vae"],
        ["bsa.cli.cache"],
        ["bsa.cli.train", "teacher"],
        ["bsa.cli.train", "evaluator"],
    ):
        out = subprocess.run(
            [sys.executable, "-m", *argv, "experiments/debug.yaml", *overrides],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"{argv}: {out.stderr[-3000:]}"
    return {"root": root, "overrides": overrides}
