"""Shared fixtures: float64 math, fresh random inputs per test (seeded by the test's name)."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

# before anything imports huggingface_hub (it reads HF_HUB_OFFLINE once, at its import): a run of
# pytest outside `make test` stays offline too, instead of retrying downloads for minutes
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402
from _helpers import bsa_cli  # noqa: E402


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
    out = bsa_cli("data", "experiments/debug.yaml", *overrides, timeout=300)
    assert out.returncode == 0, f"data: {out.stderr[-3000:]}"
    # the evaluator needs only the data: it trains beside the VAE → cache → teacher chain (each
    # command is mostly its interpreter's imports, one core; CI has two)
    repo = Path(__file__).resolve().parents[1]
    evaluator_log = root / "train-evaluator.log"
    with open(evaluator_log, "w") as log:
        evaluator = subprocess.Popen(
            [sys.executable, "-m", "bsa.cli.train", "evaluator", "experiments/debug.yaml", *overrides],
            cwd=repo,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        for argv in (["train", "vae"], ["cache"], ["train", "teacher"]):
            out = bsa_cli(*argv, "experiments/debug.yaml", *overrides, timeout=300)
            assert out.returncode == 0, f"{argv}: {out.stderr[-3000:]}"
        assert evaluator.wait(timeout=300) == 0, f"train evaluator: {evaluator_log.read_text()[-3000:]}"
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
    return {"root": root, "overrides": overrides}
