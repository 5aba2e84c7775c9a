"""MemberStageEnd: at the end of a population's stage, each member goes through its own run's end."""

from __future__ import annotations

import time

import lightning.pytorch as pl


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
    with its own loggers. ``members``: per member ``{"name", "callbacks", "loggers", "done",
    "scored"}`` ("scored": its callbacks evaluate the stage);
    ``promoted``: per member the promoted teacher (None where done before)."""

    def __init__(self, total_steps: int, members: list[dict]):
        self.total_steps, self.members = total_steps, members
        self.promoted: list = [None] * len(members)
        self.ran = False

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.global_step < self.total_steps or self.ran:
            return
        pl_module.release_graphs()  # the training is over: its graphs' memory to the members' scoring
        for k, member in enumerate(self.members):
            if member["done"]:
                continue
            start = time.perf_counter()
            module = pl_module.member(k)
            view = MemberTrainer(trainer, member["loggers"])
            parts = {}
            for callback in member["callbacks"]:
                lap = time.perf_counter()
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
