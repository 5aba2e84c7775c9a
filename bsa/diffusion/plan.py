"""The halving plan of progressive distillation: teacher_steps → teacher_steps/2 → … → target_steps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One distillation stage: a student with ``student_steps`` learns two teacher steps per step."""

    index: int
    teacher_steps: int
    student_steps: int


@dataclass(frozen=True)
class DistillationPlan:
    """teacher_steps / 2^k = target_steps (Salimans & Ho 2022, Alg. 2: each stage halves N).

    Raises ``ValueError`` naming both numbers when target_steps is not reachable by halving.
    """

    teacher_steps: int
    target_steps: int

    def __post_init__(self) -> None:
        for name in ("teacher_steps", "target_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        n, reachable = self.teacher_steps, []
        while n >= 1:
            reachable.append(n)
            if n % 2:
                break
            n //= 2
        if self.target_steps not in reachable:
            raise ValueError(
                f"target steps {self.target_steps} cannot be reached by halving {self.teacher_steps} teacher steps: "
                f"it must be teacher_steps / 2^k, i.e. one of {reachable}"
            )

    @property
    def stages(self) -> list[Stage]:
        """The stages in order; empty when target_steps == teacher_steps."""
        out, n = [], self.teacher_steps
        while n > self.target_steps:
            out.append(Stage(len(out) + 1, n, n // 2))
            n //= 2
        return out

    @property
    def step_counts(self) -> list[int]:
        """[teacher_steps, …, target_steps]."""
        return [self.teacher_steps] + [s.student_steps for s in self.stages]

    def describe(self) -> str:
        """One line, e.g. ``200 → 100 → 50 → 25 (3 stages)``."""
        n = len(self.stages)
        return " → ".join(map(str, self.step_counts)) + f" ({n} stage{'s' if n != 1 else ''})"
