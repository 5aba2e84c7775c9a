"""The one place that knows the noise schedule and the sampler's timestep grids.

Conventions (SPEC §2): variance preserving, discrete time as in AudioLDM.
    ᾱ_t = Π_{i≤t} (1 − β_i),  α_t = √ᾱ_t,  σ_t = √(1 − ᾱ_t),  SNR(t) = α_t² / σ_t²,  λ_t = log SNR(t).
Timesteps are integers 0 … T−1 (T = 1000). The sentinel ``CLEAN = -1`` denotes the data itself
(α = 1, σ = 0, SNR = ∞): it is where the last sampling step lands, so the final DDIM step and the
last distillation target are exact rather than stopping at ᾱ_0 < 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CLEAN = -1
"""Timestep sentinel for clean data: α = 1, σ = 0."""

SCHEDULES = ("scaled_linear", "linear")


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete VP noise schedule given by its cumulative products ᾱ_t (float64, shape [T])."""

    alphas_cumprod: torch.Tensor

    def __post_init__(self) -> None:
        a = self.alphas_cumprod
        if a.ndim != 1 or a.dtype != torch.float64:
            raise ValueError("alphas_cumprod must be a 1-D float64 tensor")
        if not bool(((a > 0) & (a < 1)).all()) or not bool((a[1:] < a[:-1]).all()):
            raise ValueError("alphas_cumprod must lie in (0, 1) and decrease strictly")
        object.__setattr__(self, "_tables", {})  # device → lookup table, see _table

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def _table(self, device: torch.device) -> torch.Tensor:
        """[1, ᾱ_0, …, ᾱ_{T−1}] on ``device`` (index 0 ↔ CLEAN), copied there once."""
        if device not in self._tables:
            table = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod])
            self._tables[device] = table.to(device)
        return self._tables[device]

    def _alphas_cumprod_at(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point:
            raise TypeError(f"timesteps must be integers, got {t.dtype}")
        valid = ((t >= CLEAN) & (t < self.num_train_timesteps)).all()
        message = f"timesteps must lie in [-1, {self.num_train_timesteps - 1}]"
        compiling = torch.compiler.is_compiling()
        if t.device.type == "cpu" and not compiling:
            if not bool(valid):
                raise ValueError(f"{message}, got {t.tolist()}")
        elif compiling or not (t.is_cuda and torch.cuda.is_current_stream_capturing()):
            torch._assert_async(valid, message)  # on the device: no host synchronisation
        # (a graph capture cannot assert: its warm-up checked the same timesteps)
        # take, not [ ]: indexing with a 0-d tensor reads it on the host (a sync no graph can capture)
        return self._table(t.device).take(t.long() + 1)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(α_t, σ_t) = (√ᾱ_t, √(1 − ᾱ_t)) for integer timesteps ``t`` (any shape; −1 = clean). float64."""
        abar = self._alphas_cumprod_at(t)
        return abar.sqrt(), (1.0 - abar).sqrt()

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """SNR(t) = ᾱ_t / (1 − ᾱ_t)  (SPEC §2); +∞ at ``CLEAN``."""
        abar = self._alphas_cumprod_at(t)
        return abar / (1.0 - abar)

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """λ_t = log SNR(t)."""
        return self.snr(t).log()


def betas_for(beta_start: float, beta_end: float, num_train_timesteps: int, kind: str) -> torch.Tensor:
    """β_t of diffusers' ``scaled_linear`` (linear in √β, LDM/AudioLDM) or ``linear`` schedule, float64."""
    if kind == "scaled_linear":
        return (
            torch.linspace(
                math.sqrt(beta_start), math.sqrt(beta_end), num_train_timesteps, dtype=torch.float64
            )
            ** 2
        )
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    raise ValueError(f"unknown beta schedule {kind!r}; expected one of {SCHEDULES}")


def audioldm_schedule(
    beta_start: float = 0.0015,
    beta_end: float = 0.0195,
    num_train_timesteps: int = 1000,
    kind: str = "scaled_linear",
) -> NoiseSchedule:
    """AudioLDM's training schedule: 1000 steps, scaled-linear β from 0.0015 to 0.0195 (SPEC §2).

    These are the ``beta_start``/``beta_end``/``beta_schedule`` of the diffusers scheduler config
    shipped with the AudioLDM checkpoints; ᾱ_t = Π(1 − β).
    """
    betas = betas_for(beta_start, beta_end, num_train_timesteps, kind)
    return NoiseSchedule(torch.cumprod(1.0 - betas, dim=0))


def step_grid(num_steps: int, num_train_timesteps: int = 1000, power: float = 1.0) -> torch.Tensor:
    """Descending timesteps of an N-step sampler: t_i = round(T·i/N) − 1 for i = N, …, 1.

    This is diffusers' ``timestep_spacing="trailing"`` (Lin et al. 2024, "Common Diffusion Noise
    Schedules and Sample Steps are Flawed", Table 2), computed in exact integer arithmetic with
    numpy's round-half-to-even, so it equals diffusers' grid point for point. Two
    properties follow and are what progressive distillation needs:
    * the first step starts at t = T − 1, the noisiest point, for every N (a 4-step student does
      not start from a partly clean latent, as "leading" spacing would make it);
    * nesting: ``step_grid(N)`` is every other point of ``step_grid(2N)`` for *every* N, because
      T·i/N = T·(2i)/(2N) exactly, so any halving plan (200 → … → 25, 256 → … → 1) is valid.
    The sampler steps from each grid point to the next and from the last one to ``CLEAN``.

    ``power`` ρ ≠ 1 spaces the grid as t_i = round(T·(i/N)^ρ) − 1 (the polynomial spacing of
    Karras et al. 2022, eq. 5, in timesteps): ρ > 1 puts more steps at low noise, where SNR > 1
    (issue "A weighting study…", part 4: on AudioLDM's schedule 6 of the 25 trailing steps have
    SNR > 1, 12 with ρ = 2). It still starts at T − 1; points that would round together are pushed
    apart to keep N distinct timesteps. ρ = 1 is the trailing grid above, exactly.
    Returns a LongTensor of shape [N].
    """
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    if num_steps > num_train_timesteps:
        raise ValueError(f"num_steps={num_steps} exceeds num_train_timesteps={num_train_timesteps}")
    if not power > 0:
        raise ValueError(f"power must be positive, got {power!r}")
    i = torch.arange(num_steps, 0, -1, dtype=torch.int64)
    if power != 1.0:
        points = torch.round(num_train_timesteps * (i.double() / num_steps) ** power).long() - 1
        # ascending from the cleanest point: each at least one above the one before
        ascending = points.flip(0).clamp(min=0)
        floor = torch.arange(num_steps, dtype=torch.int64)
        ascending = torch.cummax(ascending - floor, dim=0).values + floor
        if ascending[-1] > num_train_timesteps - 1:
            raise ValueError(
                f"{num_steps} distinct steps do not fit below t = {num_train_timesteps} with power {power}"
            )
        return ascending.flip(0)
    # T·i/N rounded half to even (numpy's rule, as diffusers uses), in exact integer arithmetic
    q, r = (
        torch.div(num_train_timesteps * i, num_steps, rounding_mode="floor"),
        (num_train_timesteps * i) % num_steps,
    )
    round_up = (2 * r > num_steps) | ((2 * r == num_steps) & (q % 2 == 1))
    return q + round_up.long() - 1


def step_pairs(grid: torch.Tensor) -> list[tuple[int, int]]:
    """(t, s) pairs the sampler visits on ``grid``: each point to the next, the last to ``CLEAN``."""
    ts = [int(t) for t in grid]
    return list(zip(ts, ts[1:] + [CLEAN], strict=True))


def teacher_midpoint(grid: torch.Tensor, i: torch.Tensor, num_train_timesteps: int = 1000) -> torch.Tensor:
    """For a student on ``grid`` (N steps) and step indices ``i`` (0-based, step t=grid[i] → next),
    the midpoint t' on the teacher's 2N-step grid (SPEC §3): ``step_grid(2N)[2i + 1]``."""
    fine = step_grid(2 * grid.shape[0], num_train_timesteps)
    return fine.to(i.device)[2 * i + 1]


def next_timestep(grid: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """t'' = the grid point after ``grid[i]``, or ``CLEAN`` after the last one."""
    padded = torch.cat([grid, grid.new_tensor([CLEAN])])
    return padded.to(i.device)[i + 1]


def halving_chain(teacher_steps: int) -> list[int]:
    """Step counts of progressive distillation from ``teacher_steps``: N → ⌈N/2⌉ → … → 1.

    Salimans & Ho (2022, Alg. 2) halve an even N. An odd N (200 → 100 → 50 → 25 → 13 …) keeps
    going: the student takes every other point of the teacher's grid, so each student step covers
    two teacher steps except the last, which covers one (see :func:`student_step_triples`).
    """
    if not isinstance(teacher_steps, int) or isinstance(teacher_steps, bool) or teacher_steps < 1:
        raise ValueError(f"teacher_steps must be a positive integer, got {teacher_steps!r}")
    chain = [teacher_steps]
    while chain[-1] > 1:
        chain.append((chain[-1] + 1) // 2)
    return chain


def sampling_grid(
    num_steps: int, teacher_steps: int | None = None, num_train_timesteps: int = 1000, power: float = 1.0
) -> torch.Tensor:
    """The timestep grid an N-step model samples on: the one place that decides it.

    Without ``teacher_steps``, or when N is not on :func:`halving_chain` of it, this is
    :func:`step_grid` (N). On the chain it is the grid the student was distilled on: the
    teacher's ``step_grid(teacher_steps)`` thinned to every other point (starting at T − 1) once
    per stage. Where every halving was even this *is* ``step_grid(N)`` (the nesting property);
    after an odd stage (25 → 13) it is the nested grid, e.g. 200 → … → 4 gives [999, 679, 359, 39].
    ``power``: the spacing of the base grid (:func:`step_grid`; ``distill.grid_power``).
    """
    if teacher_steps is None or num_steps not in halving_chain(teacher_steps):
        return step_grid(num_steps, num_train_timesteps, power)
    grid = step_grid(teacher_steps, num_train_timesteps, power)
    while grid.shape[0] > num_steps:
        grid = grid[0::2]
    return grid


def student_step_triples(teacher_grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t, t', t'') for every step of the student distilled from a teacher on ``teacher_grid`` (SPEC §3).

    The student grid is ``teacher_grid[0::2]``; its step i goes t = grid[2i] → t'' = grid[2i+2]
    through the teacher midpoint t' = grid[2i+1] (``CLEAN`` past the end). When the teacher has an
    odd number of steps, the student's last step covers the teacher's single last step: t' = t
    (a DDIM step from t to t is the identity) and t'' = ``CLEAN``, so the same two-step target
    (:func:`bsa.diffusion.distillation_target`) is exact there too. Returns three LongTensors [⌈N/2⌉].
    """
    n = teacher_grid.shape[0]
    padded = torch.cat([teacher_grid, teacher_grid.new_tensor([CLEAN, CLEAN])])
    idx = torch.arange(0, n, 2, device=teacher_grid.device)
    t, t_mid, s = padded[idx], padded[idx + 1], padded[idx + 2]
    if n % 2:  # last student step: one teacher step t → CLEAN
        t_mid[-1], s[-1] = t[-1], CLEAN
    return t, t_mid, s
