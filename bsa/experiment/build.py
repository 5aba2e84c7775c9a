"""From a config to the objects that do the work: the device, the Trainer, loggers, models, the
latent cache's expected identity, the data module, the evaluation suite."""

from __future__ import annotations

import logging

from bsa.config import BsaConfig


def torch_device(cfg: BsaConfig) -> str:
    """ "cuda" when a GPU is there and the config does not ask for the CPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"


def world_size(cfg: BsaConfig) -> int:
    """Ranks the config asks for (devices × nodes; 1 for "auto"/lists of devices it cannot count)."""
    t = cfg.trainer
    return (t.devices if isinstance(t.devices, int) and t.devices > 0 else 1) * t.num_nodes


# what Lightning says at every stage that a user cannot act on: advertisements, the hardware it
# found (the run's own header says what it uses), the loop's own reason to stop (max_steps)
# and its advice on float32 matmuls, which trainer.matmul_precision sets on purpose ("highest": the
# fidelity recipe's exact fp32 targets)
_CHATTER = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "LOCAL_RANK:",
    "`Trainer.fit` stopped:",
    "You are using a CUDA device",
)


class _NoChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(_CHATTER) or "💡 Tip:" in message)


def quiet_lightning() -> None:
    """Keep the console to what the run says: drop Lightning's advertisements (the LitLogger and
    litmodels tips) and its warning that modules are in eval mode at the start of training — the
    frozen teacher inside a DistillationModule is, on purpose. Idempotent."""
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _NoChatter) for f in handler.filters):
                handler.addFilter(_NoChatter())
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    # Lightning's own use of a torch API that torch deprecated (lightning/pytorch/utilities/_pytree.py)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def ddp_strategy(ranks: int, bucket_mb: float):
    """The training strategy of ``ranks`` processes: "auto" for one, else Lightning DDP with
    ``bucket_mb`` gradient buckets whose views the gradients are (no copy between them)."""
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(bucket_cap_mb=bucket_mb, gradient_as_bucket_view=True) if ranks > 1 else "auto"


def ddp_callbacks(ranks: int, comm_hook: str) -> list:
    """What DDP of ``ranks`` processes adds to a trainer's callbacks: ``trainer.ddp_comm_hook``'s
    compression of the gradient buckets ("none": nothing; one rank: nothing to all-reduce)."""
    from bsa.callbacks.ddp import CommHook

    return [CommHook(comm_hook)] if ranks > 1 and comm_hook != "none" else []


def signal_plugins_and_callbacks(ranks: int) -> tuple[list, list]:
    """The trainer's plugins and callbacks for the signals that stop or requeue it, acted on at
    the end of an optimizer step (:class:`~bsa.callbacks.signals.StepEndSignals`): SIGTERM under
    DDP, and in a SLURM job its requeue signal — Lightning's SLURM environment then without its
    own requeue handler, which saved a checkpoint wherever the signal landed."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from bsa.callbacks.signals import StepEndSignals

    plugins, requeue_signal = [], None
    if SLURMEnvironment.detect():
        environment = SLURMEnvironment(auto_requeue=False)
        plugins, requeue_signal = [environment], environment.requeue_signal
    if ranks == 1 and requeue_signal is None:
        return [], []
    return plugins, [StepEndSignals(sigterm=ranks > 1, requeue_signal=requeue_signal)]


COMPILE_CACHE = ".compile-cache"  # under paths.output_root


def compile_cache_folder(cfg: BsaConfig) -> str:
    """Where torch.compile keeps what it compiles (Inductor's graphs, AOTAutograd's, Triton's
    kernels) for a run of ``cfg``: TORCHINDUCTOR_CACHE_DIR where it is set, else
    ``<paths.output_root>/.compile-cache`` — beside the runs rather than torch's
    ``/tmp/torchinductor_<user>``, which is one machine's: a resumed or requeued run on another node
    of a shared file system, and every later run of a comparison, find the kernels compiled before
    (within a process the first stage compiles and later stages reuse it)."""
    import os
    from pathlib import Path

    return os.environ.get("TORCHINDUCTOR_CACHE_DIR") or str(
        Path(cfg.paths.output_root).absolute() / COMPILE_CACHE
    )


def use_compile_cache(cfg: BsaConfig) -> str | None:
    """Points this process's torch.compile at :func:`compile_cache_folder` when the config compiles
    anything (``trainer.compile``, ``eval.compile``) and returns it; None, the environment untouched,
    when nothing is compiled."""
    import os

    if cfg.trainer.compile == "off" and cfg.eval.compile == "off":
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder = compile_cache_folder(cfg)
    return folder


def lightning_trainer(cfg: BsaConfig, **kwargs):
    """A ``lightning.Trainer`` with ``cfg.trainer``'s accelerator, devices, nodes, precision,
    DDP buckets and communication hook, cuDNN benchmarking and logging interval (plus
    ``kwargs``); sets the process's float32 matmul precision and compile cache first."""
    import lightning.pytorch as pl
    import torch

    quiet_lightning()
    t = cfg.trainer
    torch.set_float32_matmul_precision(t.matmul_precision)
    use_compile_cache(cfg)
    plugins, signal_callbacks = signal_plugins_and_callbacks(world_size(cfg))
    kwargs["callbacks"] = [
        *ddp_callbacks(world_size(cfg), t.ddp_comm_hook),
        *signal_callbacks,
        *kwargs.get("callbacks", []),
    ]
    kwargs["plugins"] = [*plugins, *kwargs.get("plugins", [])]
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=ddp_strategy(world_size(cfg), t.ddp_bucket_mb),
        precision=t.precision,
        log_every_n_steps=t.log_every_n_steps,
        benchmark=t.cudnn_benchmark,
        **kwargs,
    )


def load_denoiser(cfg: BsaConfig, model: str):
    """The Denoiser of ``model`` (a path, ``embedded:<name>``, or an exported stage folder, whose
    ``unet/`` is taken) on the config's schedule and parameterisation."""
    from bsa.models.assets import resolve_model_path
    from bsa.models.denoiser import Denoiser
    from bsa.models.export import is_stage_folder
    from bsa.models.stages import prediction_type_of
    from bsa.models.unet import load_unet

    path = resolve_model_path(model)
    unet = load_unet(path / "unet" if is_stage_folder(path) else path)
    return Denoiser(unet, cfg.schedule.build(), prediction_type_of(path, cfg.schedule.prediction_type))


def wandb_mode(configured: str) -> str:
    """``auto``: online when the user is logged in (WANDB_API_KEY, or api.wandb.ai in ~/.netrc), else offline.
    An explicit WANDB_MODE in the environment wins over the config."""
    import os
    from pathlib import Path

    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if configured != "auto":
        return configured
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    )
    return "online" if logged_in else "offline"


def wandb_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("wandb") is not None


def loggers_in_use(cfg: BsaConfig) -> list[str]:
    """What records a run's metrics: the CSV logger always, W&B (with its mode) when it is on and installed."""
    if cfg.logging.wandb and wandb_installed():
        return ["csv", f"wandb ({wandb_mode(cfg.logging.wandb_mode)})"]
    return ["csv"]


def wandb_logger(cfg: BsaConfig, run: str, run_dir, stage):
    """One W&B run per stage, grouped by ``logging.wandb_group`` (a comparison) or the distillation
    run, written under the run folder (``run_dir/wandb``); its config holds the resolved config and
    the stage plan."""
    import os

    from lightning.pytorch.loggers import WandbLogger

    from bsa.config import to_yaml

    os.environ["WANDB_MODE"] = wandb_mode(cfg.logging.wandb_mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    plan = [
        {"stage": s.index, "mode": s.mode, "teacher_steps": s.teacher_steps, "student_steps": s.student_steps}
        for s in cfg.distill.plan.stages
    ]
    logger = WandbLogger(
        project=cfg.logging.wandb_project,
        group=cfg.logging.wandb_group or run,
        job_type=f"stage{stage.index}",
        name=f"{run}-s{stage.index}-{stage.student_steps}steps",
        save_dir=str(run_dir),
        config={
            "resolved": to_yaml(cfg),
            "plan": plan,
            "stage": stage.index,
            "student_steps": stage.student_steps,
            "weighting": cfg.distill.stage_weighting_label(stage.mode),
            "seed": cfg.trainer.seed,
        },
    )
    # Lightning always passes wandb.init an `anonymous` setting, which wandb ≥ 0.2x warns has no effect
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def cache_identity(cfg: BsaConfig, vae, text_encoder):
    """The identity of a latent cache built from ``cfg.data`` with these models."""
    from bsa.audio import MelParams, num_samples_for
    from bsa.data.manifest import CacheIdentity
    from bsa.models.autoencoder import latent_shape, vae_identity

    mel = MelParams()
    frames = mel.frames(num_samples_for(cfg.data.clip_seconds, mel.sample_rate))
    return CacheIdentity(
        mel=mel.as_dict(),
        clip_seconds=cfg.data.clip_seconds,
        vae=vae_identity(vae, cfg.models.vae),
        text_encoder=text_encoder.identity,
        latent_shape=latent_shape(vae, frames, mel.n_mels),
    )


def build_expected_identity(cfg: BsaConfig):
    """The identity a cache must have for the configured VAE and text encoder."""
    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import load_vae
    from bsa.models.text import load_text_encoder

    return cache_identity(
        cfg, load_vae(resolve_model_path(cfg.models.vae)), load_text_encoder(cfg.models.text_encoder)
    )


def latent_datamodule(cfg: BsaConfig, batch_size: int, num_workers: int | None = None):
    """The LatentDataModule of ``cfg.data.cache_dir``, checked against the configured models."""
    from bsa.data.datamodule import LatentDataModule

    dm = LatentDataModule(
        cfg.data.cache_dir,
        batch_size,
        expected=build_expected_identity(cfg),
        num_workers=min(cfg.data.num_workers, 4) if num_workers is None else num_workers,
        seed=cfg.trainer.seed,
        resident=cfg.data.resident,
    )
    dm.setup()
    return dm


def build_suite(cfg: BsaConfig, device: str):
    """The evaluation suite ``cfg.eval`` asks for; a backbone whose weights are missing is an error
    naming the file."""
    from bsa.metrics.backbones import FadLibraryBackbone, LaionClap
    from bsa.metrics.suite import EmbeddedBackbone, EvaluationSuite
    from bsa.models.assets import resolve_model_path
    from bsa.models.evaluator import AudioEvaluator

    e = cfg.eval
    evaluator = AudioEvaluator.from_pretrained(
        resolve_model_path(cfg.models.evaluator), low_cpu_mem_usage=False
    )
    suite = EvaluationSuite(EmbeddedBackbone(evaluator.eval().to(device)))
    if e.fad_backbone != "embedded":
        suite.fad = FadLibraryBackbone(e.fad_backbone, e.backbone_dir)
    if e.clap_checkpoint:
        suite.clap = LaionClap(e.clap_checkpoint)
    return suite
