"""The built wheel carries the shipped models, and a non-editable install of it generates audio."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (path,) = out.glob("bsa-*.whl")
    return path


def test_wheel_holds_every_shipped_model_and_its_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(REPO).as_posix() for p in (REPO / "bsa" / "assets").rglob("*") if p.is_file()]
    assert shipped, "no shipped models found"
    missing = [n for n in shipped if n not in names]
    assert not missing, missing
    assert any(n.endswith("teacher/diffusion_pytorch_model.safetensors") for n in names)


def test_a_non_editable_install_generates_a_clip_with_the_bsa_command(wheel, tmp_path):
    """The wheel installed on its own (not this checkout: its dependencies come from this
    environment), run as the installed ``bsa`` console script from a folder outside the repository."""
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import bsa, bsa.models.assets as a; print(bsa.__file__); print(a.ASSETS)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr  # not this checkout
    out = tmp_path / "clips"
    run = subprocess.run(
        [
            str(target / "bin" / "bsa"),
            "generate",
            str(REPO / "experiments" / "embedded-cpu.yaml"),
            "--caption",
            "a dog barks twice in silence",
            "--steps",
            "4",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (clip,) = out.glob("*.wav")
    info = sf.info(str(clip))
    assert info.samplerate == 16000 and info.frames == 40960


def test_torch_and_torchaudio_are_one_release():
    """torchaudio's compiled library is built against one torch release: a fresh install on
    2026-11-28 resolved torchaudio 2.11.1 beside torch 2.11.0 (the pins allowed 2.11.*), and every
    test that touched torchaudio failed with "undefined symbol" in libtorchaudio.so. The pins are
    exact and equal, and the installed pair is one release whose library loads."""
    import tomllib

    import torch
    import torchaudio
    from packaging.version import Version

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {d.split("==")[0]: d.split("==")[1] for d in deps if d.startswith(("torch==", "torchaudio=="))}
    assert pins["torch"] == pins["torchaudio"] and "*" not in pins["torch"]
    assert Version(torchaudio.__version__).base_version == Version(torch.__version__).base_version
    spec = torchaudio.functional.spectrogram  # a call into the compiled library's ops
    assert spec(torch.ones(64), 0, torch.hann_window(16), 16, 8, 16, 2.0, False).shape[-2] == 9
