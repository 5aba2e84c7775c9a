"""Helpers shared by several test modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

from diffusers import DDIMScheduler

REPO = Path(__file__).resolve().parents[1]


def documentation() -> str:
    """The README and the pages under ``docs/``, one text: where the tables and figures that tests
    check against the committed records are written."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return "\n\n".join(page.read_text() for page in pages)


def audioldm_ddim(**kw) -> DDIMScheduler:
    """DDIMScheduler configured like the AudioLDM checkpoints' scheduler_config.json (trailing spacing)."""
    cfg = dict(
        num_train_timesteps=1000,
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        timestep_spacing="trailing",
    )
    cfg.update(kw)
    return DDIMScheduler(**cfg)


def bsa_cli(task: str, *args: str, timeout: int = 600, **kw):
    """``python -m bsa.cli.<task> ARGS…`` from the repository root, output captured (text)."""
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run(
        [sys.executable, "-m", f"bsa.cli.{task}", *args],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
