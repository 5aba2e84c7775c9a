"""MemberStageEnd: at the end of a population's stage, each member goes through its own run's end."""

from __future__ import annotations

import time

import lightning.pytorch as pl

from bsa.callbacks.profile import ErrorProfile


class MemberTrainer:
    """The population's trainer as one member's callbacks see it: everything the trainer's, but the
    member's own loggers (its metrics go to its run folder, not into the population's)."""

    def __init__(self, trainer: pl.Trainer, loggers: list):
        self._trainer, self.loggers = trainer, loggers

    def __getattr__(self, name: str):
        return getattr(self._trainer, name)


class PrefixedLogger:
    """Another logger's run seen through one member: every metric and hyper-parameter name
    prefixed ``<prefix>/`` (a population's members log into its one W&B run per stage)."""

    def __init__(self, logger, prefix: str):
        self.logger, self.prefix = logger, prefix

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.logger.log_metrics({f"{self.prefix}/{k}": v for k, v in metrics.items()}, step=step)

    def log_hyperparams(self, params: dict) -> None:
        self.logger.log_hyperparams({f"{self.prefix}/{k}": v for k, v in params.items()})

    def save(self) -> None:  # the population's trainer saves its own logger
        pass


class MemberStageEnd(pl.Callback):
    """When the population's stage has all its ``total_steps``: each member not ``done`` before is
    materialised (``PopulationDistillationModule.member``) and handed to the callbacks its own run
    would call at the stage's end — its promotion first, then its error profile and evaluation —
    with its own loggers. The members' error profiles are measured first, all in one pass over the
    population (``error_profiles``: the same calls for K students, where one member at a time each
    made launch-bound calls of its own), and each is written by its member's own
    :class:`ErrorProfile`. ``members``: per member ``{"name", "callbacks", "loggers", "done",
    "scored"}`` ("scored": its callbacks evaluate the stage); ``promoted``: per member the promoted
    teacher (None where done before)."""

    def __init__(self, total_steps: int, members: list[dict]):
        self.total_steps, self.members = total_steps, members
        self.promoted: list = [None] * len(members)
        self.ran = False

    def _profiles(self, trainer: pl.Trainer, pl_module) -> list | None:
        """Every member's (items, profile rows), measured together; an empty list off rank 0 (no
        profile is written there); None where none is due or the members' profiles are not alike
        (each member then measures its own)."""
        due = [
            c for m in self.members if not m["done"] for c in m["callbacks"] if isinstance(c, ErrorProfile)
        ]
        if not due or len({c.protocol for c in due}) != 1:
            return None
        start = time.perf_counter()
        measured = due[0].measure(trainer, pl_module)
        if measured is not None:
            print(
                f"  error profiles of {len(measured[1])} member{'s' * (len(measured[1]) != 1)} in "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )
        return [] if measured is None else [(measured[0], rows) for rows in measured[1]]

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.global_step < self.total_steps or self.ran:
            return
        pl_module.release_graphs()  # the training is over: its graphs' memory to the members' scoring
        profiles = self._profiles(trainer, pl_module)
        for k, member in enumerate(self.members):
            if member["done"]:
                continue
            start = time.perf_counter()
            module = pl_module.member(k)
            view = MemberTrainer(trainer, member["loggers"])
            parts = {}
            for callback in member["callbacks"]:
                lap = time.perf_counter()
                if isinstance(callback, ErrorProfile) and profiles is not None:
                    if profiles:  # measured above (rank 0): this member's rows
                        callback.write(module, *profiles[k])
                else:
                    callback.on_train_end(view, module)
                parts[type(callback).__name__] = time.perf_counter() - lap
            self.promoted[k] = member["callbacks"][0].promoted
            for logger in member["loggers"]:
                logger.save()
            print(
                f"  member {member['name']}: exported"
                + (" and scored" if member["scored"] else "")
                + f" in {time.perf_counter() - start:.1f} s ("
                + ", ".join(f"{name} {s:.1f}" for name, s in parts.items())
                + ")",
                flush=True,
            )
        self.ran = True
