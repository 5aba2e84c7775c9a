"""A population run: the weightings of ``distill.population`` trained at once, stage by stage, as one
:class:`bsa.lit.population.PopulationDistillationModule` (issue "A weighting study that can tell
weightings apart": the study's runs share the GPU's work instead of time-slicing it).

Each member is a run of its own on disk — ``<output_root>/<weighting slug>-seed<seed>``, the folder,
fingerprint, stage exports, ``eval.jsonl``, ``profiles.jsonl`` and summary that ``bsa distill`` with
that weighting writes (its config is the population's with ``distill.weighting``, its
hyper-parameters, ``distill.label`` and ``distill.run_name`` set, ``distill.population`` empty), so
the comparison's reports read members and single runs alike. The population's own folder,
``<output_root>/population-seed<seed>-<8 hex>``, holds what only it has: the checkpoints of the
stage in training and its training log. A stage is done when every member's is; an interrupted
stage resumes from the population's checkpoint, and members already exported and scored at a
stage's end (a kill among the members' evaluations) are not done again.
"""

from __future__ import annotations

import copy

from bsa.config import BsaConfig, ConfigError, load_config_from
from bsa.experiment.distill import (
    DistillationResult,
    StageDiverged,
    StageResult,
    _denoiser_of,
    data_seed,
    finished_stage,
    loaded_teacher,
    module_arguments,
    prepare_run,
    run_folder,
    stage_callbacks,
    stage_trainer,
)


def member_configs(cfg: BsaConfig) -> list[BsaConfig]:
    """Each member's config: the population's, made the run of one weighting (as ``bsa compare``
    makes its runs, :func:`bsa.experiment.compare.weighting_overrides`)."""
    from bsa.experiment.compare import weighting_overrides

    seed = cfg.trainer.seed
    return [
        load_config_from(cfg, [*weighting_overrides(spec, seed), "distill.population=[]"])
        for spec in cfg.distill.population
    ]


def run_population(cfg: BsaConfig) -> list[tuple[BsaConfig, DistillationResult]]:
    """Run (or resume) every stage of the plan for every member; each member's promoted student is
    its next stage's teacher. Returns each member's config and result (``finished`` False when
    ``distill.stop_after`` ended the invocation)."""
    import time

    if str(cfg.trainer.devices) != "1":
        raise ConfigError(
            f"trainer.devices: a population trains in one process on one device (got {cfg.trainer.devices}); "
            "bsa compare spreads populations over the GPUs"
        )
    from bsa.callbacks.timing import format_laps

    start, laps = time.time(), {}
    members = member_configs(cfg)
    first = prepare_run(members[0], laps=laps)
    contexts = [first[0]] + [prepare_run(m, shared=first, laps=laps)[0] for m in members[1:]]
    print(
        f"set-up      {time.time() - start:.1f} s ({len(members)} members: {format_laps(laps)})", flush=True
    )
    results = [DistillationResult(ctx.run_dir, finished=False) for ctx in contexts]
    teachers = [first[1]] * len(members)  # one shared teacher until the members' own
    steps_done = 0
    for stage in cfg.distill.plan.stages:
        checkpoint = population_checkpoint(cfg, stage)  # a member's unscored stage is finished from it
        done = [finished_stage(ctx, stage, checkpoint) for ctx in contexts]
        promoted = [None] * len(members)
        if any(d is None for d in done):
            teachers = [loaded_teacher(cfg, t) for t in teachers]
            done, promoted, steps_done = train_population_stage(
                cfg, contexts, stage, teachers, done, steps_done, checkpoint
            )
            if done is None:
                return list(zip(members, results, strict=True))
        for k, outcome in enumerate(done):
            results[k].stages.append(outcome)
            # a member done before is loaded only if a later stage trains from it (runs.resume_state)
            teachers[k] = (
                _denoiser_of(cfg, promoted[k].unet, promoted[k].prediction_type)
                if promoted[k] is not None
                else outcome
            )
    for result in results:
        result.finished = True
    return list(zip(members, results, strict=True))


def population_checkpoint(population: BsaConfig, stage):
    """The stage's checkpoint of the population (its ``last.ckpt`` in the population's folder)."""
    from bsa.callbacks.checkpoint import AtomicLastCheckpoint

    folder = run_folder(population) / "checkpoints" / stage.folder_name
    return AtomicLastCheckpoint(folder, population.distill.checkpoint_every)


def build_population_module(contexts, stage, teachers):
    """The stage's PopulationDistillationModule: one shared teacher (every member's is the same
    denoiser: the first progressive stage) or a population of the members' own, and students
    initialised from their teachers."""
    import lightning.pytorch as pl

    from bsa.lit.population import PopulationDistillationModule
    from bsa.models.denoiser import Denoiser
    from bsa.models.population import PopulationUNet

    cfg, d = contexts[0].cfg, contexts[0].cfg.distill
    pl.seed_everything(cfg.trainer.seed + stage.index, workers=True, verbose=False)
    shared = all(t is teachers[0] for t in teachers)
    unet = teachers[0].unet if shared else PopulationUNet([t.unet for t in teachers])
    teacher = Denoiser(unet, teachers[0].schedule, teachers[0].prediction_type)
    students = PopulationUNet([copy.deepcopy(t.unet) for t in teachers]).train().requires_grad_(True)
    return PopulationDistillationModule(
        teacher,
        _denoiser_of(cfg, students, d.student_prediction or teachers[0].prediction_type),
        contexts[0].dm.null_text_embedding,
        weightings=[
            {"weighting": ctx.cfg.distill.weighting, "weighting_kwargs": ctx.cfg.distill.weighting_kwargs}
            for ctx in contexts
        ],
        **module_arguments(cfg, stage),
        cuda_graphs=cfg.trainer.cuda_graphs,  # the population's vmapped calls replayed from CUDA graphs
    )


def train_population_stage(
    population: BsaConfig, contexts, stage, teachers, done, steps_done: int, checkpoint
):
    """Train (or resume) one stage of every member; at its end each member not yet done goes through
    its own promotion, error profile and evaluation. ``population``: the population's config (its
    folder: training log, W&B run); ``checkpoint``: the stage's :func:`population_checkpoint`.
    Returns each member's StageResult, the promoted teachers (None for members done before) and the
    optimizer steps of this invocation so far; (None, None, steps) when ``distill.stop_after``
    stopped it."""
    from lightning.pytorch.callbacks import Timer

    from bsa.callbacks.checkpoint import StopAfterSteps
    from bsa.callbacks.population import MemberStageEnd, PrefixedLogger
    from bsa.experiment.build import wandb_installed, wandb_logger
    from bsa.lit.csv_logger import ResumableCSVLogger
    from bsa.lit.guard import NonFiniteLossError
    from bsa.models.export import read_stage

    cfg, d = contexts[0].cfg, contexts[0].cfg.distill
    folder = run_folder(population)
    steps = d.optimizer_steps(stage)
    module = build_population_module(contexts, stage, teachers)
    loggers = [ResumableCSVLogger(folder, name="logs", version=stage.folder_name)]
    wandb_on = population.logging.wandb and wandb_installed()
    if wandb_on:  # one W&B run per stage for the population
        loggers.append(wandb_logger(population, folder.name, folder, stage))
    members = []
    for ctx, finished in zip(contexts, done, strict=True):
        cb = stage_callbacks(ctx, stage, steps_done)
        own = [ResumableCSVLogger(ctx.run_dir, name="logs", version=stage.folder_name)]
        members.append(
            {
                "name": ctx.run_dir.name,
                "callbacks": [c for c in (cb.promotion, cb.profile, cb.evaluation) if c is not None],
                # its records in its folder; in W&B, its metrics under its label in the population's run
                "loggers": own + [PrefixedLogger(lg, ctx.cfg.distill.weighting_label) for lg in loggers[1:]],
                "done": finished is not None,
                "scored": cb.evaluation is not None,  # distill.score_steps may leave the stage unscored
            }
        )
    stopper, timer, end = StopAfterSteps(d.stop_after, steps_done), Timer(), MemberStageEnd(steps, members)
    trainer = stage_trainer(
        cfg,
        stage,
        loggers,
        lambda progress: [timer, checkpoint, stopper, progress, end],
        checkpoint.folder,
        d.batch_size * len(contexts),
        f", {len(contexts)} students",
    )
    resume = checkpoint.resume_path()
    print(
        f"stage {stage.index} ({stage.mode}, {stage.teacher_steps} → {stage.student_steps} steps), "
        f"{len(contexts)} students: " + (f"resuming from {resume}" if resume else f"{steps} optimizer steps"),
        flush=True,
    )
    contexts[0].dm.seed = data_seed(cfg, stage)
    try:
        trainer.fit(module, contexts[0].dm, ckpt_path=resume, weights_only=True)
    except NonFiniteLossError as e:
        raise StageDiverged(
            f"stage {stage.index} of population {folder} diverged: {e}; its checkpoints are in "
            f"{checkpoint.folder} (delete them to start the stage again)"
        ) from None
    start_step = stopper.start if stopper.start is not None else trainer.global_step
    if not end.ran and trainer.global_step >= steps:  # resumed from its last step: Lightning skips the end
        end.on_train_end(trainer, module)
    if wandb_on:
        import wandb  # one W&B run per stage: close this one before the next stage opens its own

        wandb.finish()
    steps_done += trainer.global_step - start_step
    if not end.ran:
        print(
            f"stopped in stage {stage.index} at step {trainer.global_step}/{steps} (distill.stop_after="
            f"{d.stop_after}); run the same command again to continue from {checkpoint.path}"
        )
        return None, None, steps_done
    seconds = timer.time_elapsed("train")  # restored at a resume: the stage's whole training, as the steps
    trained = trainer.global_step
    print(
        f"stage {stage.index}: {trained} steps × {d.batch_size} × {len(contexts)} students in {seconds:.1f} s "
        f"of training = {trained * d.batch_size * len(contexts) / max(seconds, 1e-9):.0f} samples/s in all "
        f"({checkpoint.summary()})",
        flush=True,
    )
    outcomes = [
        finished
        if finished is not None
        else StageResult(
            stage,
            ctx.run_dir / stage.folder_name,
            read_stage(ctx.run_dir / stage.folder_name),
            train_seconds=seconds,
            world_size=1,
        )
        for ctx, finished in zip(contexts, done, strict=True)
    ]
    return outcomes, end.promoted, steps_done
