"""The built wheel carries the shipped models (a non-editable install needs them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_shipped_model_and_its_config(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("bsa-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(REPO).as_posix() for p in (REPO / "bsa" / "assets").rglob("*") if p.is_file()]
    assert shipped, "no shipped models found"
    missing = [n for n in shipped if n not in names]
    assert not missing, missing
    assert any(n.endswith("teacher/diffusion_pytorch_model.safetensors") for n in names)
