"""``python -m bsa.cli.distill experiments/embedded-cpu.yaml distill.target_steps=25``

Distil the teacher (distill.teacher_steps with classifier-free guidance) down to target_steps:
stage 0 folds the guidance into a w-conditioned student (distill.guided_stage), then each stage
halves the step count. One ``trainer.fit`` per stage; finished stages are skipped and an
interrupted stage resumes from its last checkpoint, so running the same command again continues.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig, to_yaml


EXIT_UNFINISHED = 3  # stopped by distill.stop_after: not done (make compare counts it as unfinished)


def run_name(cfg: BsaConfig) -> str:
    d = cfg.distill
    return d.run_name or f"{cfg.preset}-{d.weighting}-seed{cfg.trainer.seed}"


@dataclass
class StageSpec:
    index: int
    mode: str  # "guided" or "progressive"
    teacher_steps: int
    student_steps: int

    @property
    def folder_name(self) -> str:
        return f"stage{self.index:02d}_{'guided_' if self.mode == 'guided' else ''}{self.student_steps}steps"


def stage_specs(cfg: BsaConfig) -> list[StageSpec]:
    d = cfg.distill
    specs = [StageSpec(0, "guided", d.teacher_steps, d.teacher_steps)] if d.guided_stage else []
    specs += [StageSpec(s.index, "progressive", s.teacher_steps, s.student_steps) for s in d.plan.stages]
    return specs


def describe(cfg: BsaConfig) -> str:
    d = cfg.distill
    lines = [
        f"preset      {cfg.preset}",
        f"run         {Path(cfg.paths.output_root) / run_name(cfg)}",
        f"plan        {d.plan.describe()}",
        f"weighting   {d.weighting}"
        + (f" (floor={d.bsa_floor}, gamma={d.bsa_gamma})" if d.weighting == "bsa" else ""),
        f"guidance    scale {d.guidance_scale} (AudioLDM convention)"
        + (
            f"; stage 0 folds it into a w-conditioned student, w ∈ [{d.guidance_min}, {d.guidance_max}]"
            if d.guided_stage
            else "; students run CFG themselves (2 network calls per step)"
        ),
        f"per stage   {d.steps_per_stage} optimizer steps (guided stage {d.guided_steps}), batch {d.batch_size}, lr {d.lr}",
    ]
    t = cfg.trainer
    lines.append(
        f"trainer     {t.accelerator}, {t.devices} device(s) × {t.num_nodes} node(s), {t.precision}"
        + (f", torch.compile {t.compile} ({t.compile_backend})" if t.compile != "off" else "")
        + (f", float32 matmul precision {t.matmul_precision}" if t.matmul_precision != "highest" else "")
    )
    for st in stage_specs(cfg):
        what = (
            "guidance → w-conditioned student"
            if st.mode == "guided"
            else f"{st.teacher_steps} → {st.student_steps} steps"
        )
        lines.append(f"  stage {st.index}: {what}")
    return "\n".join(lines)


def _weighting_kwargs(cfg: BsaConfig) -> dict:
    d = cfg.distill
    return (
        {"gamma": d.min_snr_gamma}
        if d.weighting == "min_snr"
        else {"floor": d.bsa_floor, "gamma": d.bsa_gamma}
    )


def _trainer(cfg: BsaConfig, steps: int, callbacks: list, logger, root: Path):
    from bsa.cli.common import lightning_trainer

    return lightning_trainer(
        cfg,
        max_steps=steps,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        default_root_dir=root,
        enable_model_summary=False,
    )


class StageDiverged(RuntimeError):
    """The non-finite guard stopped a stage; its checkpoints were set aside."""


def _stage_evaluated(run_dir: Path, index: int, repair: bool) -> bool:
    from bsa.durable import read_jsonl

    return any(
        r.get("stage") == index and r.get("final", True) for r in read_jsonl(run_dir / "eval.jsonl", repair)
    )


def _set_aside(folder: Path, step: int) -> Path | None:
    """Move a diverged stage's checkpoints out of the way (kept for inspection, never resumed)."""
    if not folder.is_dir():
        return None
    aside = folder.with_name(f"{folder.name}.diverged-step{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    return aside


def distill(cfg: BsaConfig) -> dict:
    """Run (or resume) every stage; returns the summary.

    A stage is done when its export exists and (with an evaluation) its final record is in
    ``eval.jsonl``. Otherwise it resumes from the newest of its ``last.ckpt`` and a SLURM
    pre-emption checkpoint; one taken at the stage's last step (a kill after it and before the
    export or the evaluation) is exported and scored without training."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from bsa.callbacks.checkpoint import AtomicLastCheckpoint, StopAfterSteps
    from bsa.callbacks.progress import StageProgressBar
    from bsa.callbacks.promotion import StagePromotion
    from bsa.cli.cache import build_expected_identity
    from bsa.cli.common import load_denoiser
    from bsa.data.datamodule import LatentDataModule
    from bsa.diffusion import sampling_grid
    from bsa.durable import remove_stale_temporaries
    from bsa.lit.distill import DistillationModule
    from bsa.lit.guard import NonFiniteLossError
    from bsa.lit.optim import is_fused
    from bsa.models.assets import resolve_model_path
    from bsa.models.denoiser import Denoiser
    from bsa.models.export import is_stage_folder, read_stage, save_stage
    from bsa.models.identity import state_dict_sha256
    from bsa.models.unet import load_unet, with_guidance_input
    from bsa.runs import check_or_write_fingerprint, fingerprint, launched_as_global_zero

    d, s = cfg.distill, cfg.schedule
    zero = launched_as_global_zero()
    run_dir = Path(cfg.paths.output_root) / run_name(cfg)
    schedule = s.build()
    dm = LatentDataModule(
        cfg.data.cache_dir,
        d.batch_size,
        expected=build_expected_identity(cfg),
        num_workers=min(cfg.data.num_workers, 4),
        seed=cfg.trainer.seed,
    )
    dm.setup()
    teacher = load_denoiser(cfg, cfg.models.teacher)
    facts = fingerprint(cfg, state_dict_sha256(teacher.unet), dm.manifest.identity.content())
    status = check_or_write_fingerprint(run_dir, facts, write=zero)
    if status == "adopted":
        print(f"note: {run_dir} predates run fingerprints; its settings are recorded now, not checked")
    if zero:
        for stale in remove_stale_temporaries(run_dir):
            print(f"removed {stale} (left by an interrupted write)")
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    vae_folder = resolve_model_path(cfg.models.vae)
    schedule_config = dict(
        num_train_timesteps=s.num_train_timesteps,
        beta_start=s.beta_start,
        beta_end=s.beta_end,
        beta_schedule=s.beta_schedule,
        prediction_type=s.prediction_type,
    )
    stopper = StopAfterSteps(d.stop_after)
    scorer = build_scorer(cfg, dm.null_text_embedding) if d.eval_clips else None
    # the teacher "FAD vs teacher" compares with: e.g. a comparison starts every run from one shared
    # guided stage but scores against the original CFG teacher
    original_teacher = load_denoiser(cfg, d.reference_teacher) if d.reference_teacher else teacher
    done_now, stages = 0, []
    specs = stage_specs(cfg)
    for spec in specs:
        folder = run_dir / spec.folder_name
        checkpoint = AtomicLastCheckpoint(run_dir / "checkpoints" / spec.folder_name, d.checkpoint_every)
        resume = checkpoint.resume_path()
        exported = is_stage_folder(folder)
        evaluated = scorer is None or (exported and _stage_evaluated(run_dir, spec.index, zero))
        if exported and (evaluated or resume is None):  # finished earlier: it is the next teacher
            if not evaluated:
                print(
                    f"warning: stage {spec.index} has no evaluation record in {run_dir / 'eval.jsonl'} and no "
                    f"checkpoint to score it from; it is used as it is"
                )
            teacher = Denoiser(load_unet(folder / "unet"), schedule, s.prediction_type)
            stages.append(
                {"spec": spec, "folder": folder, "metadata": read_stage(folder), "resumed": "done before"}
            )
            continue
        steps = d.guided_steps if spec.mode == "guided" else d.steps_per_stage
        pl.seed_everything(cfg.trainer.seed + spec.index, workers=True, verbose=False)
        student_unet = (
            with_guidance_input(teacher.unet) if spec.mode == "guided" else copy.deepcopy(teacher.unet)
        )
        module = DistillationModule(
            teacher,
            Denoiser(student_unet.train().requires_grad_(True), schedule, s.prediction_type),
            dm.null_text_embedding,
            mode=spec.mode,
            student_steps=spec.student_steps,
            teacher_steps=spec.teacher_steps,
            base_steps=d.teacher_steps,
            weighting=d.weighting,
            weighting_kwargs=_weighting_kwargs(cfg),
            guidance_scale=d.guidance_scale,
            guidance_range=(d.guidance_min, d.guidance_max),
            lr=d.lr,
            weight_decay=d.weight_decay,
            ema_decay=d.ema_decay,
            total_steps=steps,
            warmup_steps=min(100, steps // 10),
            seed=cfg.trainer.seed + 1000 * spec.index,
            compile=cfg.trainer.compile_kwargs(),
        )

        def save(denoiser, spec=spec, folder=folder):
            meta = {
                "stage": spec.index,
                "mode": spec.mode,
                "num_sample_steps": spec.student_steps,
                "teacher_steps": spec.teacher_steps,
                "base_steps": d.teacher_steps,
                "timesteps": sampling_grid(spec.student_steps, d.teacher_steps).tolist(),
                "guidance_scale": d.guidance_scale,
                "guidance_range": [d.guidance_min, d.guidance_max],
                "w_conditioned": denoiser.takes_guidance,
                "weighting": d.weighting,
                "text_encoder": cfg.models.text_encoder,
                "null_text_embedding": dm.null_text_embedding.tolist(),
                "run": run_name(cfg),
                "fingerprint": facts,
                "config": to_yaml(cfg),
            }
            clap = Path(cfg.models.text_encoder) if Path(cfg.models.text_encoder).is_dir() else None
            return save_stage(
                folder, denoiser.unet, meta, vae_folder, cfg.models.vocoder, schedule_config, clap
            )

        promotion = StagePromotion(steps, save)
        stopper.done_before, stopper.start = done_now, None
        logger = [CSVLogger(run_dir, name="logs", version=spec.folder_name)]
        if cfg.logging.wandb:
            from bsa.cli.common import wandb_logger

            logger.append(wandb_logger(cfg, run_name(cfg), spec))
        from lightning.pytorch.callbacks import Timer

        timer = Timer()  # first: its on_train_end runs before the stage evaluation
        what = "guidance → w-conditioned" if spec.mode == "guided" else f"{spec.teacher_steps} → {spec.student_steps} steps"
        progress = StageProgressBar(
            f"stage {spec.index}/{specs[-1].index} ({what})", d.batch_size * _world_size(cfg)
        )
        callbacks = [timer, checkpoint, promotion, stopper, progress]
        evaluation = None
        if scorer is not None:
            from bsa.callbacks.evaluation import StageEvaluation

            evaluation = StageEvaluation(
                scorer,
                teacher=original_teacher,
                teacher_steps=d.teacher_steps,
                student_steps=spec.student_steps,
                promotion=promotion,
                run_dir=run_dir,
                record={
                    "run": run_name(cfg),
                    "weighting": d.weighting,
                    "seed": cfg.trainer.seed,
                    "stage": spec.index,
                    "stage_name": spec.folder_name,
                    "mode": spec.mode,
                    "steps": spec.student_steps,
                    "label": f"stage {spec.index} student @ {spec.student_steps}",
                },
                every_n_steps=cfg.eval.every_n_steps,
                showcase=cfg.eval.showcase,
                protocol=scorer.protocol,
            )
            callbacks.append(evaluation)
        # per-stage root: a SLURM pre-emption checkpoint (hpc_ckpt_*.ckpt) belongs to this stage only
        trainer = _trainer(cfg, steps, callbacks, logger, checkpoint.folder)
        aside = sorted(checkpoint.folder.parent.glob(f"{spec.folder_name}.diverged-*"))
        print(
            f"stage {spec.index} ({spec.mode}, {spec.teacher_steps} → {spec.student_steps} steps): "
            + (
                f"resuming from {resume}"
                if resume
                else f"{steps} optimizer steps"
                + (f" (from its start: it diverged before, see {aside[-1]})" if aside else "")
            ),
            flush=True,
        )
        try:
            trainer.fit(module, dm, ckpt_path=resume, weights_only=True)
        except NonFiniteLossError as e:
            moved = _set_aside(checkpoint.folder, trainer.global_step) if trainer.is_global_zero else None
            raise StageDiverged(
                f"stage {spec.index} diverged: {e}\n"
                + (f"its checkpoints were set aside to {moved} (not resumed); " if moved else "")
                + f"a rerun starts stage {spec.index} again from its start with the same settings; to change "
                "distill.lr or other settings, start a new run (distill.run_name=<new name>)"
            ) from None
        start_step = stopper.start if stopper.start is not None else trainer.global_step
        if promotion.promoted is None and trainer.global_step >= steps:
            # resumed from a checkpoint of the stage's last step: Lightning skips the loop and its
            # on_train_end, so the export and the evaluation are done here
            print(f"stage {spec.index}: its checkpoint is at its last step ({steps}); exporting it", flush=True)
            promotion.on_train_end(trainer, module)
            if evaluation is not None:
                evaluation.on_train_end(trainer, module)
            for lg in trainer.loggers:
                lg.save()
        if cfg.logging.wandb:  # one W&B run per stage: close this one before the next stage opens its own
            import wandb

            wandb.finish()
        skipped = int(getattr(module, "_nonfinite_total", 0))
        done_now += trainer.global_step - start_step
        if promotion.promoted is None:
            print(
                f"stopped in stage {spec.index} at step {trainer.global_step}/{steps} (distill.stop_after="
                f"{d.stop_after}); run the same command again to continue from {checkpoint.path}"
            )
            return {"run_dir": str(run_dir), "finished": False, "stages": stages}
        teacher = Denoiser(promotion.promoted.unet, schedule, s.prediction_type)
        seconds = timer.time_elapsed("train")
        world = trainer.world_size
        samples = (trainer.global_step - start_step) * d.batch_size * world
        print(
            f"stage {spec.index}: {trainer.global_step - start_step} steps × {d.batch_size} × {world} rank(s) in "
            f"{seconds:.1f} s of training = {samples / max(seconds, 1e-9):.0f} samples/s "
            f"({'fused' if is_fused(trainer.optimizers[0]) else 'foreach'} AdamW)",
            flush=True,
        )
        stages.append(
            {
                "spec": spec,
                "folder": folder,
                "metadata": read_stage(folder),
                "nonfinite_skipped": skipped,
                "train_seconds": seconds,
                "samples_per_s": samples / max(seconds, 1e-9),
                "world_size": world,
            }
        )
    return {"run_dir": str(run_dir), "finished": True, "stages": stages}


def _world_size(cfg: BsaConfig) -> int:
    t = cfg.trainer
    return (t.devices if isinstance(t.devices, int) and t.devices > 0 else 1) * t.num_nodes


def build_scorer(cfg: BsaConfig, null_text_emb):
    """The stage scorer of ``distill.eval_clips`` test captions, or None without an evaluator."""
    from bsa.callbacks.evaluation import EvaluationSet, StageScorer
    from bsa.cli.common import torch_device
    from bsa.metrics.suite import build_suite
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
    scorer.protocol = {
        **suite.protocol(),
        "sample_rate": 16000,
        "num_clips": len(eval_set.captions),
        "split": "test",
        "seeds": [eval_set.seeds[0], eval_set.seeds[-1]],
        "guidance_scale": cfg.distill.guidance_scale,
        "real_reference": eval_set.real is not None,
        "world_size": cfg.trainer.devices * cfg.trainer.num_nodes
        if isinstance(cfg.trainer.devices, int)
        else None,
    }
    return scorer


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    print(describe(cfg), flush=True)
    if args.dry_run:
        return 0
    from bsa.runs import RunMismatchError

    start = time.time()
    try:
        result = distill(cfg)
    except RunMismatchError as e:
        print(f"bsa distill: {e}", file=sys.stderr)
        return 2
    except StageDiverged as e:
        print(f"bsa distill: {e}", file=sys.stderr)
        return 1
    if not result["finished"]:
        return EXIT_UNFINISHED
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from bsa.cli.summary import format_summary, read_eval_log

    if (
        rank_zero_only.rank != 0
    ):  # under DDP the stages are trained by all ranks, scored and summarised by one
        return 0
    rows = read_eval_log(Path(result["run_dir"]) / "eval.jsonl")
    text = format_summary(cfg, result, rows, time.time() - start)
    run_dir = Path(result["run_dir"])
    (run_dir / "summary.md").write_text(text + "\n")
    (run_dir / "summary.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "stages": [
                    {
                        "stage": st["spec"].index,
                        "mode": st["spec"].mode,
                        "steps": st["spec"].student_steps,
                        "folder": str(st["folder"]),
                        **{k: st[k] for k in ("train_seconds", "samples_per_s", "world_size") if k in st},
                    }
                    for st in result["stages"]
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print("\n" + text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa distill", __doc__.strip().splitlines()[2])
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
