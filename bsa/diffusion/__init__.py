"""Pure diffusion math (imports torch only): schedules, parameterisations, DDIM, the sampler,
guidance, the progressive-distillation target and the registry of loss weightings."""

from .distillation import distillation_target, target_from_two_steps
from .guidance import (
    CondDenoise,
    Denoise,
    classifier_free_guidance,
    guidance_active,
    guided_prediction,
    network_calls,
)
from .parameterization import (
    PARAMETERIZATIONS,
    broadcast_like,
    eps_from_v,
    eps_from_x,
    prediction_from_x,
    v_from_x_eps,
    x_from_eps,
    x_from_prediction,
    x_from_v,
)
from .plan import DistillationPlan, Stage
from .sampling import sample
from .schedules import (
    CLEAN,
    NoiseSchedule,
    audioldm_schedule,
    halving_chain,
    next_timestep,
    sampling_grid,
    step_grid,
    step_pairs,
    student_step_triples,
    teacher_midpoint,
)
from .solvers import SOLVERS, ddim_step
from .weighting import WEIGHTINGS, bsa_weight, get_weighting, x_space_factor

__all__ = [
    "CLEAN",
    "PARAMETERIZATIONS",
    "SOLVERS",
    "WEIGHTINGS",
    "CondDenoise",
    "Denoise",
    "DistillationPlan",
    "NoiseSchedule",
    "Stage",
    "audioldm_schedule",
    "broadcast_like",
    "bsa_weight",
    "classifier_free_guidance",
    "ddim_step",
    "distillation_target",
    "eps_from_v",
    "eps_from_x",
    "get_weighting",
    "guided_prediction",
    "halving_chain",
    "network_calls",
    "guidance_active",
    "next_timestep",
    "prediction_from_x",
    "sample",
    "sampling_grid",
    "step_grid",
    "step_pairs",
    "student_step_triples",
    "target_from_two_steps",
    "teacher_midpoint",
    "v_from_x_eps",
    "x_from_eps",
    "x_from_prediction",
    "x_from_v",
    "x_space_factor",
]
