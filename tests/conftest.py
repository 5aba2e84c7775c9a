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
