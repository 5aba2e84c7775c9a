"""The plan of a distillation run: the guided stage (optional), then the halving chain
teacher_steps → ⌈teacher_steps/2⌉ → … → target_steps. The one list of stages: the runner, the
dry run, the records and the reports all take it from here."""

from __future__ import annotations

from dataclasses import dataclass

from .schedules import halving_chain


@dataclass(frozen=True)
class Stage:
    """One distillation stage. ``progressive``: a student with ``student_steps`` sampling steps
    learns two teacher steps per step. ``guided`` (stage 0, Meng et al. 2023): a w-conditioned
    student learns the classifier-free-guided teacher at every t (same sampling step count)."""

    index: int
    teacher_steps: int
    student_steps: int
    mode: str = "progressive"

    @property
    def folder_name(self) -> str:
        """The stage's folder in the run (its export) and in ``checkpoints/``."""
        return f"stage{self.index:02d}_{'guided_' if self.mode == 'guided' else ''}{self.student_steps}steps"

    def describe(self) -> str:
        if self.mode == "guided":
            return "guidance → w-conditioned student"
        return f"{self.teacher_steps} → {self.student_steps} steps"


@dataclass(frozen=True)
class DistillationPlan:
    """teacher_steps → ⌈teacher_steps/2⌉ → … → target_steps (Salimans & Ho 2022, Alg. 2: each
    stage halves N; an odd N halves to ⌈N/2⌉, see :func:`bsa.diffusion.halving_chain`).

    Raises ``ValueError`` naming both numbers when target_steps is not on that chain.
    """

    teacher_steps: int
    target_steps: int
    guided: bool = False  # stage 0 folds classifier-free guidance into a w-conditioned student

    def __post_init__(self) -> None:
        for name in ("teacher_steps", "target_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        reachable = halving_chain(self.teacher_steps)
        if self.target_steps not in reachable:
            raise ValueError(
                f"target steps {self.target_steps} cannot be reached by halving {self.teacher_steps} teacher steps: "
                f"it must be one of {reachable}"
            )

    @property
    def halvings(self) -> list[Stage]:
        """The progressive stages in order (indices from 1); empty when target_steps == teacher_steps."""
        chain = halving_chain(self.teacher_steps)
        chain = chain[: chain.index(self.target_steps) + 1]
        return [Stage(k + 1, a, b) for k, (a, b) in enumerate(zip(chain[:-1], chain[1:], strict=True))]

    @property
    def stages(self) -> list[Stage]:
        """Every stage in order: the guided stage 0 (when ``guided``), then the halvings."""
        guided = [Stage(0, self.teacher_steps, self.teacher_steps, "guided")] if self.guided else []
        return guided + self.halvings

    @property
    def step_counts(self) -> list[int]:
        """[teacher_steps, …, target_steps]."""
        return [self.teacher_steps] + [s.student_steps for s in self.halvings]

    def describe(self) -> str:
        """One line of the halvings, e.g. ``200 → 100 → 50 → 25 (3 stages)``."""
        n = len(self.halvings)
        return " → ".join(map(str, self.step_counts)) + f" ({n} stage{'s' if n != 1 else ''})"
