"""Helpers shared by several test modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

from diffusers import DDIMScheduler


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
