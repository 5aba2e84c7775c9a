"""The halving plan of progressive distillation: teacher_steps → teacher_steps/2 → … → target_steps."""

from __future__ import annotations

from dataclasses import dataclass

from .schedules import halving_chain


@dataclass(frozen=True)
class Stage:
    """One distillation stage: a student with ``student_steps`` learns two teacher steps per step."""

    index: int
    teacher_steps: int
    student_steps: int


@dataclass(frozen=True)
class DistillationPlan:
    """teacher_steps → ⌈teacher_steps/2⌉ → … → target_steps (Salimans & Ho 2022, Alg. 2: each
    stage halves N; an odd N halves to ⌈N/2⌉, see :func:`bsa.diffusion.halving_chain`).

    Raises ``ValueError`` naming both numbers when target_steps is not on that chain.
    """

    teacher_steps: int
    target_steps: int

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
    def stages(self) -> list[Stage]:
        """The stages in order; empty when target_steps == teacher_steps."""
        chain = halving_chain(self.teacher_steps)
        chain = chain[: chain.index(self.target_steps) + 1]
        return [Stage(k + 1, a, b) for k, (a, b) in enumerate(zip(chain[:-1], chain[1:], strict=True))]

    @property
    def step_counts(self) -> list[int]:
        """[teacher_steps, …, target_steps]."""
        return [self.teacher_steps] + [s.student_steps for s in self.stages]

    def describe(self) -> str:
        """One line, e.g. ``200 → 100 → 50 → 25 (3 stages)``."""
        n = len(self.stages)
        return " → ".join(map(str, self.step_counts)) + f" ({n} stage{'s' if n != 1 else ''})"
