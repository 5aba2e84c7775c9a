"""The distillation run: every stage of the plan (``cfg.distill.plan``), one ``trainer.fit`` each.

A stage is done when its export exists and (with an evaluation) its final record is in
``eval.jsonl``. Otherwise it resumes from the newest of its ``last.ckpt`` and a SLURM pre-emption
checkpoint; one taken at the stage's last step (a kill after it, before the export or the
evaluation) is exported and scored without training. See README, "What survives what".
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from bsa.config import BsaConfig, to_yaml
from bsa.diffusion import Stage
from bsa.experiment.build import compile_cache_folder
from bsa.experiment.runs import member_run_name, population_name, run_name

EXIT_UNFINISHED = 3  # stopped by distill.stop_after: not done (make compare counts it as unfinished)


class StageDiverged(RuntimeError):
    """The non-finite guard stopped a stage; its checkpoints were set aside."""


@dataclass
class StageResult:
    stage: Stage
    folder: Path  # the stage's export
    metadata: dict  # its bsa_stage.json
    done_before: bool = False  # finished by an earlier invocation
    nonfinite_skipped: int = 0
    train_seconds: float | None = None
    samples_per_s: float | None = None
    world_size: int | None = None


@dataclass
class DistillationResult:
    run_dir: Path
    finished: bool
    stages: list[StageResult] = field(default_factory=list)


@dataclass
class RunContext:
    """What every stage of a run shares."""

    cfg: BsaConfig
    run_dir: Path
    global_zero: bool  # the process that cleans, records and writes the run's files
    dm: object  # LatentDataModule
    fingerprint: dict
    scorer: object | None  # StageScorer, or None without evaluation
    reference_teacher: object  # the Denoiser "FAD vs teacher" compares with


def logging_line(cfg: BsaConfig) -> str:
    """Where the metrics go, said once at the start (and why W&B is missing when it is)."""
    from bsa.experiment.build import loggers_in_use, wandb_installed

    line = ", ".join(loggers_in_use(cfg))
    if cfg.logging.wandb and not wandb_installed():
        line += " (logging.wandb is on but the wandb package is not installed: pip install wandb)"
    elif cfg.logging.wandb:
        line += f" under {run_folder(cfg) / 'wandb'}"
    return line


def run_folder(cfg: BsaConfig) -> Path:
    """Where the run keeps its checkpoints and logs: its own folder, or a population's."""
    if cfg.distill.population:
        return Path(cfg.paths.output_root) / population_name(list(cfg.distill.population), cfg.trainer.seed)
    return Path(cfg.paths.output_root) / run_name(cfg)


def run_line(cfg: BsaConfig) -> str:
    """The banner's line naming the run folder — a population's and its members' runs."""
    if not cfg.distill.population:
        return f"run         {run_folder(cfg)}"
    members = ", ".join(member_run_name(spec, cfg.trainer.seed) for spec in cfg.distill.population)
    return f"runs        {run_folder(cfg)} (the population's), members in {cfg.paths.output_root}: {members}"


def describe(cfg: BsaConfig) -> str:
    """What a run of ``cfg`` would do (``--dry-run`` prints it)."""
    d, t = cfg.distill, cfg.trainer
    lines = [
        f"preset      {cfg.preset}",
        run_line(cfg),
        f"plan        {d.plan.describe()}",
        f"weighting   {d.weighting}"
        + (f" (floor={d.bsa_floor}, gamma={d.bsa_gamma})" if d.weighting == "bsa" else "")
        + (
            f"; the guided stage {d.guided_weighting_label} (distill.guided_weighting)"
            if d.guided_weighting_label
            else ""
        )
        if not d.population
        else f"population  {len(d.population)} students trained together, one run each: "
        + ", ".join(d.population),
        f"guidance    scale {d.guidance_scale} (AudioLDM convention)"
        + (
            f"; stage 0 folds it into a w-conditioned student, w ∈ [{d.guidance_min}, {d.guidance_max}]"
            if d.guided_stage
            else "; no guided stage: students take models.teacher's guidance input if it has one"
            " (a guided stage's folder), else run CFG themselves (2 network calls per step)"
        ),
        *(
            [
                f"grid        spaced t_i = round(T·(i/N)^{d.grid_power:g}) − 1 (distill.grid_power; the teacher keeps its own)"
            ]
            if d.grid_power != 1
            else []
        ),
        f"per stage   {d.steps_per_stage} optimizer steps (guided stage {d.guided_steps}), batch {d.batch_size}, lr {d.lr}",
        f"trainer     {t.accelerator}, {t.devices} device(s) × {t.num_nodes} node(s), {t.precision}"
        + (f", torch.compile {t.compile} ({t.compile_backend})" if t.compile != "off" else "")
        + (" of the repeated blocks" if t.compile != "off" and t.compile_regions else "")
        + (f", compile cache {compile_cache_folder(cfg)}" if t.compile != "off" else "")
        + (f", float32 matmul precision {t.matmul_precision}" if t.matmul_precision != "highest" else ""),
        f"logging     {logging_line(cfg)}",
    ]
    lines += [f"  stage {st.index}: {st.describe()}" for st in d.plan.stages]
    return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------------


def prepare_run(cfg: BsaConfig, shared: tuple[RunContext, object] | None = None, laps: dict | None = None):
    """Data, the teacher, the run's fingerprint (refusing a folder made with other settings), stale
    temporaries removed, the scorer. Returns (context, teacher). ``shared``: another run's (context,
    teacher) whose data module, teacher, scorer and reference this run uses (a population's members:
    same data and teacher, each its own folder). ``laps``: the parts' seconds are added to it (the
    set-up line of the console says where a slow start went)."""
    from bsa.callbacks.timing import Laps
    from bsa.durable import remove_stale_temporaries
    from bsa.experiment.build import latent_datamodule, load_denoiser
    from bsa.experiment.runs import check_or_write_fingerprint, fingerprint, launched_as_global_zero
    from bsa.models.identity import state_dict_sha256

    d = cfg.distill
    zero = launched_as_global_zero()
    run_dir = Path(cfg.paths.output_root) / run_name(cfg)
    lap = Laps(seconds=laps)
    if shared is not None:
        dm, teacher = shared[0].dm, shared[1]
    else:
        dm = latent_datamodule(cfg, d.batch_size)
        lap("data module")
        teacher = load_denoiser(cfg, cfg.models.teacher)
        lap("teacher")
    facts = fingerprint(cfg, state_dict_sha256(teacher.unet), dm.manifest.identity.content())
    if check_or_write_fingerprint(run_dir, facts, write=zero) == "adopted":
        print(f"note: {run_dir} predates run fingerprints; its settings are recorded now, not checked")
    if zero:
        for stale in remove_stale_temporaries(run_dir):
            print(f"removed {stale} (left by an interrupted write)")
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    lap("fingerprint and folder")
    if shared is not None:
        return RunContext(
            cfg, run_dir, zero, dm, facts, shared[0].scorer, shared[0].reference_teacher
        ), teacher
    scorer = build_scorer(cfg, dm.null_text_embedding) if d.eval_clips else None
    lap("scorer")
    # e.g. a comparison starts every run from one shared guided stage but scores against the CFG teacher
    reference = load_denoiser(cfg, d.reference_teacher) if d.reference_teacher else teacher
    return RunContext(cfg, run_dir, zero, dm, facts, scorer, reference), teacher


def run_distillation(cfg: BsaConfig) -> DistillationResult:
    """Run (or resume) every stage of the plan; each finished stage's student is the next teacher."""
    from bsa.callbacks.timing import format_laps

    start, laps = time.time(), {}
    ctx, teacher = prepare_run(cfg, laps=laps)
    if ctx.global_zero:  # where a slow start goes shows in the log (e.g. many runs on one machine)
        print(f"set-up      {time.time() - start:.1f} s ({format_laps(laps)})", flush=True)
    result = DistillationResult(ctx.run_dir, finished=False)
    steps_done = 0  # optimizer steps of this invocation (distill.stop_after)
    for stage in cfg.distill.plan.stages:
        done = finished_stage(ctx, stage)
        if done is not None:
            result.stages.append(done)
            teacher = done  # loaded only if a stage is trained from it: a run resumed from its
            continue  # resume_state holds the weights of its last finished stage alone
        teacher = loaded_teacher(cfg, teacher)
        outcome, promoted, steps_done = train_stage(ctx, stage, teacher, steps_done)
        if outcome is None:
            return result
        result.stages.append(outcome)
        teacher = promoted
    result.finished = True
    return result


def loaded_teacher(cfg: BsaConfig, teacher):
    """The denoiser a stage trains from: ``teacher`` itself, or the student of a finished stage
    (a :class:`StageResult`), loaded now — finished stages are loaded only when a stage trains
    from them (a run resumed from ``runs.resume_state`` holds its last finished student alone)."""
    if isinstance(teacher, StageResult):
        return _denoiser_of(cfg, teacher.folder / "unet", teacher.metadata.get("prediction_type"))
    return teacher


def _denoiser_of(cfg: BsaConfig, unet_or_folder, prediction_type: str | None = None):
    from bsa.models.denoiser import Denoiser
    from bsa.models.unet import load_unet

    unet = load_unet(unet_or_folder) if isinstance(unet_or_folder, str | Path) else unet_or_folder
    return Denoiser(unet, cfg.schedule.build(), prediction_type or cfg.schedule.prediction_type)


def _checkpoint(ctx: RunContext, stage: Stage):
    from bsa.callbacks.checkpoint import AtomicLastCheckpoint

    return AtomicLastCheckpoint(
        ctx.run_dir / "checkpoints" / stage.folder_name, ctx.cfg.distill.checkpoint_every
    )


def finished_stage(ctx: RunContext, stage: Stage, checkpoint=None) -> StageResult | None:
    """The stage's result when an earlier invocation finished it, else None (it must be trained,
    resumed, or exported and scored from its last checkpoint: the run's own, or ``checkpoint``'s —
    a population's, for its members)."""
    from bsa.models.export import is_stage_folder, read_stage
    from bsa.report.records import has_final_record

    folder = ctx.run_dir / stage.folder_name
    if not is_stage_folder(folder):
        return None
    evaluated = (
        ctx.scorer is None
        or not ctx.cfg.distill.scores(stage)
        or has_final_record(ctx.run_dir, stage.index, repair=ctx.global_zero)
    )
    if not evaluated:
        if (checkpoint or _checkpoint(ctx, stage)).resume_path() is not None:
            return None  # scored from its final checkpoint
        print(
            f"warning: stage {stage.index} has no evaluation record in {ctx.run_dir / 'eval.jsonl'} and no "
            "checkpoint to score it from; it is used as it is"
        )
    return StageResult(stage, folder, read_stage(folder), done_before=True)


def stage_metadata(ctx: RunContext, stage: Stage, w_conditioned: bool) -> dict:
    """``bsa_stage.json``: what a stage folder needs to be sampled alone (its grid included)."""
    from bsa.diffusion import sampling_grid

    cfg, d = ctx.cfg, ctx.cfg.distill
    return {
        "stage": stage.index,
        "mode": stage.mode,
        "num_sample_steps": stage.student_steps,
        "teacher_steps": stage.teacher_steps,
        "base_steps": d.teacher_steps,
        "timesteps": sampling_grid(stage.student_steps, d.teacher_steps, power=d.grid_power).tolist(),
        "grid_power": d.grid_power,
        "guidance_scale": d.guidance_scale,
        "guidance_range": [d.guidance_min, d.guidance_max],
        "w_conditioned": w_conditioned,
        "weighting": d.stage_weighting_label(stage.mode),
        "text_encoder": cfg.models.text_encoder,
        "null_text_embedding": ctx.dm.null_text_embedding.tolist(),
        "run": run_name(cfg),
        "fingerprint": ctx.fingerprint,
        "config": to_yaml(cfg),
    }


def build_module(ctx: RunContext, stage: Stage, teacher):
    """The stage's DistillationModule: the frozen teacher and a student initialised from it."""
    import lightning.pytorch as pl

    from bsa.lit.distill import DistillationModule
    from bsa.models.unet import with_guidance_input

    cfg, d = ctx.cfg, ctx.cfg.distill
    pl.seed_everything(cfg.trainer.seed + stage.index, workers=True, verbose=False)
    unet = with_guidance_input(teacher.unet) if stage.mode == "guided" else copy.deepcopy(teacher.unet)
    weighting, weighting_kwargs = d.stage_weighting(stage.mode)
    return DistillationModule(
        teacher,
        _denoiser_of(cfg, unet.train().requires_grad_(True), d.student_prediction or teacher.prediction_type),
        ctx.dm.null_text_embedding,
        weighting=weighting,
        weighting_kwargs=weighting_kwargs,
        **module_arguments(cfg, stage),
        compile=cfg.trainer.compile_kwargs(),
        compile_regions=cfg.trainer.compile_regions,
        cuda_graphs=cfg.trainer.cuda_graphs,
        low_precision_norms=cfg.trainer.low_precision_norms,
    )


def module_arguments(cfg: BsaConfig, stage: Stage) -> dict:
    """The stage's arguments of a DistillationModule (a population's too) other than the denoisers,
    the weighting and how the calls run (compile, graphs)."""
    d = cfg.distill
    steps = d.optimizer_steps(stage)
    return dict(
        mode=stage.mode,
        student_steps=stage.student_steps,
        teacher_steps=stage.teacher_steps,
        base_steps=d.teacher_steps,
        grid_power=d.grid_power,
        guidance_scale=d.guidance_scale,
        guidance_range=(d.guidance_min, d.guidance_max),
        lr=d.lr,
        weight_decay=d.weight_decay,
        ema_decay=d.ema_decay,
        total_steps=steps,
        warmup_steps=min(100, steps // 10),
        seed=cfg.trainer.seed + 1000 * stage.index,
        teacher_float32=d.teacher_float32,
    )


@dataclass
class StageCallbacks:
    checkpoint: object
    promotion: object
    stopper: object
    timer: object
    evaluation: object | None
    profile: object

    def as_list(self, progress) -> list:
        # the Timer first: its on_train_end runs before the stage evaluation's
        found = [self.timer, self.checkpoint, self.promotion, self.stopper, progress, self.profile]
        return found + ([self.evaluation] if self.evaluation is not None else [])


def stage_callbacks(ctx: RunContext, stage: Stage, steps_done: int) -> StageCallbacks:
    """When things happen in a stage: checkpoints, the promotion (export), the step budget, the
    evaluation."""
    from lightning.pytorch.callbacks import Timer

    from bsa.callbacks.checkpoint import StopAfterSteps
    from bsa.callbacks.profile import ErrorProfile
    from bsa.callbacks.promotion import StagePromotion
    from bsa.models.assets import resolve_model_path
    from bsa.models.export import save_stage

    cfg, d = ctx.cfg, ctx.cfg.distill
    folder = ctx.run_dir / stage.folder_name
    vae_folder = resolve_model_path(cfg.models.vae)
    s = cfg.schedule
    schedule_config = dict(
        num_train_timesteps=s.num_train_timesteps,
        beta_start=s.beta_start,
        beta_end=s.beta_end,
        beta_schedule=s.beta_schedule,
    )

    def save(denoiser):
        clap = Path(cfg.models.text_encoder) if Path(cfg.models.text_encoder).is_dir() else None
        meta = stage_metadata(ctx, stage, denoiser.takes_guidance) | {
            "prediction_type": denoiser.prediction_type
        }
        scheduler = schedule_config | {"prediction_type": denoiser.prediction_type}
        return save_stage(folder, denoiser.unet, meta, vae_folder, cfg.models.vocoder, scheduler, clap)

    promotion = StagePromotion(d.optimizer_steps(stage), save)
    evaluation = None
    if ctx.scorer is not None and d.scores(stage):
        from bsa.callbacks.evaluation import StageEvaluation

        evaluation = StageEvaluation(
            ctx.scorer,
            teacher=ctx.reference_teacher,
            teacher_steps=d.teacher_steps,
            student_steps=stage.student_steps,
            promotion=promotion,
            run_dir=ctx.run_dir,
            record=stage_identity(cfg, stage),
            every_n_steps=cfg.eval.every_n_steps,
            showcase=cfg.eval.showcase,
            protocol=ctx.scorer.protocol,
            keep_embeddings=cfg.eval.keep_embeddings,
        )
    profile = ErrorProfile(
        ctx.run_dir / "profiles.jsonl",
        stage_identity(cfg, stage),
        seed=cfg.eval.seed,
        gradients=cfg.eval.profile_gradients,
    )
    return StageCallbacks(
        _checkpoint(ctx, stage),
        promotion,
        StopAfterSteps(d.stop_after, steps_done),
        Timer(),
        evaluation,
        profile,
    )


def data_seed(cfg: BsaConfig, stage: Stage) -> int:
    """The seed of the stage's data order: the run's, or with ``distill.fresh_data_order`` its own."""
    return cfg.trainer.seed + (1000 * stage.index if cfg.distill.fresh_data_order else 0)


def stage_identity(cfg: BsaConfig, stage: Stage) -> dict:
    """What a stage's records (evaluation, error profile) say about where they come from."""
    return {
        "run": run_name(cfg),
        "weighting": cfg.distill.stage_weighting_label(stage.mode),
        "seed": cfg.trainer.seed,
        "stage": stage.index,
        "stage_name": stage.folder_name,
        "mode": stage.mode,
        "steps": stage.student_steps,
        "label": f"stage {stage.index} student @ {stage.student_steps}",
    }


def stage_loggers(ctx: RunContext, stage: Stage) -> list:
    from bsa.experiment.build import wandb_installed, wandb_logger
    from bsa.lit.csv_logger import ResumableCSVLogger

    loggers = [ResumableCSVLogger(ctx.run_dir, name="logs", version=stage.folder_name)]
    if ctx.cfg.logging.wandb and wandb_installed():
        loggers.append(wandb_logger(ctx.cfg, run_name(ctx.cfg), ctx.run_dir, stage))
    return loggers


def _set_aside(folder: Path, step: int) -> Path | None:
    """Move a diverged stage's checkpoints out of the way (kept for inspection, never resumed)."""
    if not folder.is_dir():
        return None
    aside = folder.with_name(f"{folder.name}.diverged-step{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    return aside


def stage_trainer(
    cfg: BsaConfig, stage: Stage, loggers: list, callbacks_of, folder: Path, samples: int, what: str = ""
):
    """The Trainer of one stage (a run's or a population's): ``callbacks_of(progress)`` lists its
    callbacks around the stage's progress bar (``samples`` per optimizer step; ``what`` more of its
    title); ``folder``: the stage's checkpoints, also the Trainer's root (a SLURM pre-emption
    checkpoint, hpc_ckpt_*.ckpt, belongs to this stage only)."""
    import sys

    from bsa.callbacks.progress import StageProgressBar, refresh_rate_for
    from bsa.experiment.build import lightning_trainer

    d = cfg.distill
    steps = d.optimizer_steps(stage)
    progress = StageProgressBar(
        f"stage {stage.index}/{d.plan.stages[-1].index} ({stage.describe()}{what})",
        samples,
        refresh_rate=refresh_rate_for(steps, sys.stdout.isatty()),
    )
    return lightning_trainer(
        cfg,
        max_steps=steps,
        logger=loggers,
        callbacks=callbacks_of(progress),
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        default_root_dir=folder,
        enable_model_summary=False,
    )


def train_stage(ctx: RunContext, stage: Stage, teacher, steps_done: int):
    """Train (or resume, or only export and score) one stage. Returns (its result, the promoted
    teacher, optimizer steps done in this invocation so far); (None, None, …) when the step budget
    stopped it. Raises :class:`StageDiverged` when the non-finite guard stopped it."""
    from bsa.experiment.build import world_size
    from bsa.lit.guard import NonFiniteLossError
    from bsa.lit.optim import is_fused
    from bsa.models.export import read_stage

    cfg, d = ctx.cfg, ctx.cfg.distill
    steps = d.optimizer_steps(stage)
    module = build_module(ctx, stage, teacher)
    cb = stage_callbacks(ctx, stage, steps_done)
    trainer = stage_trainer(
        cfg,
        stage,
        stage_loggers(ctx, stage),
        cb.as_list,
        cb.checkpoint.folder,
        d.batch_size * world_size(cfg),
    )
    resume = cb.checkpoint.resume_path()
    aside = sorted(cb.checkpoint.folder.parent.glob(f"{stage.folder_name}.diverged-*"))
    print(
        f"stage {stage.index} ({stage.mode}, {stage.teacher_steps} → {stage.student_steps} steps): "
        + (
            f"resuming from {resume}"
            if resume
            else f"{steps} optimizer steps"
            + (f" (from its start: it diverged before, see {aside[-1]})" if aside else "")
        ),
        flush=True,
    )
    ctx.dm.seed = data_seed(cfg, stage)  # the loaders are made at fit
    try:
        trainer.fit(module, ctx.dm, ckpt_path=resume, weights_only=True)
    except NonFiniteLossError as e:
        moved = _set_aside(cb.checkpoint.folder, trainer.global_step) if trainer.is_global_zero else None
        raise StageDiverged(
            f"stage {stage.index} diverged: {e}\n"
            + (f"its checkpoints were set aside to {moved} (not resumed); " if moved else "")
            + f"a rerun starts stage {stage.index} again from its start with the same settings; to change "
            "distill.lr or other settings, start a new run (distill.run_name=<new name>)"
        ) from None
    start_step = cb.stopper.start if cb.stopper.start is not None else trainer.global_step
    if cb.promotion.promoted is None and trainer.global_step >= steps:
        finish_from_last_checkpoint(trainer, module, cb, stage, steps)
    if any(type(lg).__name__ == "WandbLogger" for lg in trainer.loggers):
        import wandb  # one W&B run per stage: close this one before the next stage opens its own

        wandb.finish()
    trained = trainer.global_step - start_step
    steps_done += trained
    if cb.promotion.promoted is None:
        print(
            f"stopped in stage {stage.index} at step {trainer.global_step}/{steps} (distill.stop_after="
            f"{d.stop_after}); run the same command again to continue from {cb.checkpoint.path}"
        )
        return None, None, steps_done
    # the Timer's elapsed time is restored from the checkpoint: it and the step count are the stage's
    # whole training, across resumes (this invocation's steps over it read 0 samples/s at a resume)
    seconds = cb.timer.time_elapsed("train")
    world = trainer.world_size
    samples = trainer.global_step * d.batch_size * world
    print(
        f"stage {stage.index}: {trainer.global_step} steps × {d.batch_size} × {world} rank(s) in "
        f"{seconds:.1f} s of training = {samples / max(seconds, 1e-9):.0f} samples/s "
        f"({'fused' if is_fused(trainer.optimizers[0]) else 'foreach'} AdamW; {cb.checkpoint.summary()})",
        flush=True,
    )
    folder = ctx.run_dir / stage.folder_name
    outcome = StageResult(
        stage,
        folder,
        read_stage(folder),
        nonfinite_skipped=int(getattr(module, "_nonfinite_total", 0)),
        train_seconds=seconds,
        samples_per_s=samples / max(seconds, 1e-9),
        world_size=world,
    )
    return (
        outcome,
        _denoiser_of(cfg, cb.promotion.promoted.unet, cb.promotion.promoted.prediction_type),
        steps_done,
    )


def finish_from_last_checkpoint(trainer, module, cb: StageCallbacks, stage: Stage, steps: int) -> None:
    """A stage resumed from a checkpoint of its last step: Lightning restores it, skips the loop and
    its on_train_end; the export and the evaluation run here on the restored weights."""
    print(f"stage {stage.index}: its checkpoint is at its last step ({steps}); exporting it", flush=True)
    cb.promotion.on_train_end(trainer, module)
    if cb.evaluation is not None:
        cb.evaluation.on_train_end(trainer, module)
    for logger in trainer.loggers:
        logger.save()


def build_scorer(cfg: BsaConfig, null_text_emb):
    """The stage scorer of ``distill.eval_clips`` test captions, or None without an evaluator."""
    import torch

    from bsa.callbacks.evaluation import EvaluationSet, StageScorer, waveform_protocol
    from bsa.experiment.build import build_suite, torch_device
    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import load_vae
    from bsa.models.vocoder import load_vocoder

    device = torch_device(cfg)
    try:
        suite = build_suite(cfg, device)
    except (FileNotFoundError, OSError) as e:
        print(f"no stage evaluation: {e}")
        return None
    eval_set = EvaluationSet.from_config(cfg, cfg.distill.eval_clips)
    vae, vocoder = load_vae(resolve_model_path(cfg.models.vae)), load_vocoder(cfg.models.vocoder)
    scorer = StageScorer(
        suite,
        eval_set,
        vae,
        vocoder,
        null_text_emb,
        cfg.distill.guidance_scale,
        cfg.distill.teacher_steps,
        device,
    )
    if cfg.eval.reference_cache:
        scorer.reference_cache = Path(cfg.eval.reference_cache)
    scorer.teacher_floor = cfg.eval.teacher_floor
    scorer.batch_size = cfg.eval.batch_size
    scorer.cuda_graphs = cfg.eval.cuda_graphs
    scorer.grid_power = cfg.distill.grid_power
    scorer.protocol = {
        **suite.protocol(),
        "sample_rate": 16000,
        "num_clips": len(eval_set.captions),
        "split": "test",
        "seeds": [eval_set.seeds[0], eval_set.seeds[-1]],
        "guidance_scale": cfg.distill.guidance_scale,
        "real_reference": eval_set.real_files is not None,
        "waveform": waveform_protocol(vocoder),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "world_size": cfg.trainer.devices * cfg.trainer.num_nodes
        if isinstance(cfg.trainer.devices, int)
        else None,
    }
    return scorer


def write_summary(cfg: BsaConfig, result: DistillationResult, seconds: float) -> str:
    """summary.md and summary.json of a finished run (global rank 0); returns the text."""
    from bsa.report.records import read_eval_log
    from bsa.report.tables import format_summary

    rows = read_eval_log(result.run_dir / "eval.jsonl")
    text = format_summary(cfg, result.run_dir, result.stages, rows, seconds)
    (result.run_dir / "summary.md").write_text(text + "\n")
    stages = [
        {
            "stage": st.stage.index,
            "mode": st.stage.mode,
            "steps": st.stage.student_steps,
            "folder": str(st.folder),
            **{
                k: getattr(st, k)
                for k in ("train_seconds", "samples_per_s", "world_size")
                if getattr(st, k) is not None
            },
        }
        for st in result.stages
    ]
    from bsa.experiment.build import loggers_in_use

    (result.run_dir / "summary.json").write_text(
        json.dumps({"rows": rows, "stages": stages, "loggers": loggers_in_use(cfg)}, indent=2) + "\n"
    )
    return text
