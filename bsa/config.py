"""Typed configuration: OmegaConf structured configs (dataclass schemas) + YAML deltas + CLI dotlist.

``load_config(["experiments/distill.yaml"], ["distill.target_steps=25"])`` merges, in order, the
schema defaults, each YAML file and the ``key=value`` overrides, then builds the dataclasses, whose
``__post_init__`` checks run. A misspelt key, a wrong type or an impossible value raises
:class:`ConfigError` naming the key and where it came from — before anything heavy starts.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from bsa.diffusion.plan import DistillationPlan
from bsa.diffusion.weighting import WEIGHTINGS, weighting_defaults


class ConfigError(ValueError):
    """A configuration that cannot be run: the message names the key and the source."""


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


@dataclass
class PathsConfig:
    output_root: str = "runs"  # every run writes under output_root/<run name>/
    data_root: str = "data"


@dataclass
class ScheduleConfig:
    """The training noise schedule of the teacher (AudioLDM's by default, SPEC §2)."""

    beta_start: float = 0.0015
    beta_end: float = 0.0195
    beta_schedule: str = "scaled_linear"
    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"  # the teacher network's own parameterisation

    def kwargs(self) -> dict:
        """Arguments of :func:`bsa.diffusion.audioldm_schedule` (serialisable, for hyper-parameters)."""
        return dict(
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            num_train_timesteps=self.num_train_timesteps,
            kind=self.beta_schedule,
        )

    def build(self):
        """The :class:`bsa.diffusion.NoiseSchedule` this config describes."""
        from bsa.diffusion import audioldm_schedule

        return audioldm_schedule(**self.kwargs())

    def __post_init__(self) -> None:
        _check(
            0 < self.beta_start < self.beta_end < 1,
            "schedule.beta_start/beta_end",
            "need 0 < beta_start < beta_end < 1",
        )
        _check(
            self.beta_schedule in ("scaled_linear", "linear"),
            "schedule.beta_schedule",
            f"unknown {self.beta_schedule!r}; expected scaled_linear or linear",
        )
        _check(self.num_train_timesteps >= 2, "schedule.num_train_timesteps", "must be >= 2")
        _check(
            self.prediction_type in ("epsilon", "v_prediction", "sample"),
            "schedule.prediction_type",
            f"unknown {self.prediction_type!r}; expected epsilon, v_prediction or sample",
        )


# which config key gives which keyword of a weighting function (bsa.diffusion.WEIGHTINGS): the one
# table; the runner, the records and the dashboard's weight curves all read it through
# ``DistillConfig.weighting_kwargs``
WEIGHTING_PARAMETERS: dict[str, dict[str, str]] = {
    "min_snr": {"gamma": "min_snr_gamma"},
    "bsa": {"floor": "bsa_floor", "gamma": "bsa_gamma"},
    "smooth_bsa": {"floor": "bsa_floor", "gamma": "bsa_gamma"},
}


def _check_weightings(specs: list, key: str) -> None:
    """Every spec of ``specs`` parses (:func:`parse_weighting`); else a ConfigError naming ``key``."""
    for spec in specs:
        try:
            parse_weighting(spec)
        except ConfigError as e:
            raise ConfigError(f"{key}: {e}") from None


def parse_weighting(spec: str) -> tuple[str, dict[str, float]]:
    """A weighting as a comparison names it: ``"min_snr"``, or with its hyper-parameters,
    ``"bsa(floor=0.1, gamma=inf)"`` → ("bsa", {"floor": 0.1, "gamma": inf}). Unknown names or
    hyper-parameters are a ConfigError naming the spec."""
    import re

    m = re.fullmatch(r"\s*([a-z_]+)\s*(?:\((.*)\))?\s*", str(spec))
    if m is None or m.group(1) not in WEIGHTINGS:
        raise ConfigError(
            f"weighting {spec!r}: expected one of {sorted(WEIGHTINGS)}, optionally with (key=value, …)"
        )
    name, params = m.group(1), {}
    for part in filter(None, (m.group(2) or "").split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in WEIGHTING_PARAMETERS.get(name, {}):
            raise ConfigError(
                f"weighting {spec!r}: {name} takes {sorted(WEIGHTING_PARAMETERS.get(name, {})) or 'no hyper-parameters'}, not {key!r}"
            )
        try:
            params[key] = float(value)
        except ValueError:
            raise ConfigError(f"weighting {spec!r}: {key}={value.strip()!r} is not a number") from None
    return name, params


def spec_weighting(spec: str) -> tuple[str, dict[str, float]]:
    """The weighting a spec trains with: :func:`parse_weighting`, every hyper-parameter the spec
    leaves out at what the name alone means (:func:`bsa.diffusion.weighting.weighting_defaults`):
    "bsa" → ("bsa", {floor: 1, gamma: 5}) whatever the config's default."""
    name, params = parse_weighting(spec)
    return name, weighting_defaults(name) | params


def weighting_spec(name: str, params: dict[str, float]) -> str:
    """A weighting as comparisons and records name it (the inverse of :func:`parse_weighting`): the
    name alone where every hyper-parameter is at its function's default (what the name alone means,
    :func:`bsa.diffusion.weighting.weighting_defaults`), else every one of them in the table's order —
    ("bsa", {floor: 0.1, gamma: 20}) → "bsa(floor=0.1,gamma=20)", the spelling of the sweep's specs."""
    defaults = weighting_defaults(name)
    values = defaults | {k: float(v) for k, v in params.items() if k in defaults}
    if values == defaults:
        return name
    return f"{name}({','.join(f'{k}={values[k]:g}' for k in WEIGHTING_PARAMETERS[name])})"


@dataclass
class DistillConfig:
    """Progressive (and guided) distillation, SPEC §3–§5."""

    teacher_steps: int = 200
    target_steps: int = 25
    weighting: str = "bsa"
    # the package's point of the BSA family (floor, γ) = (0.1, 20), the weighting study's best by its
    # rule (docs/results/weighting-study.md "The (floor, γ) map through the vocoder, seeds 1–4…", 2026-11-29); the name ``bsa``
    # alone means the paper's reading (1, 5) in comparisons and records, so these runs are labelled
    # bsa(floor=0.1,gamma=20) (weighting_label)
    bsa_floor: float = 0.1
    bsa_gamma: float = 20.0
    # the guided stage's own weighting, a spec in compare.weightings' syntax ("min_snr",
    # "bsa(floor=0,gamma=5)"; what it leaves out is what the name alone means): the weighting study
    # varies the halvings' weighting from a guided stage of another. Empty: ``weighting`` in every stage
    guided_weighting: str = ""
    min_snr_gamma: float = 5.0
    guidance_scale: float = 2.5  # AudioLDM convention: x̂_∅ + s (x̂_c − x̂_∅)
    guided_stage: bool = True  # stage 0: fold CFG into a w-conditioned student (Meng et al. 2023)
    guidance_min: float = 1.0
    guidance_max: float = 5.0
    steps_per_stage: int = 1000  # optimizer steps per stage
    guided_steps: int = 1000  # optimizer steps of the guided stage
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 16
    ema_decay: float = 0.0  # 0 = no EMA
    # the teacher's targets in float32 even under bf16/fp16 autocast (the student still trains in
    # trainer.precision): issue "Students that keep the teacher's quality", part 2
    teacher_float32: bool = False
    # the students' output parameterisation: "" = the teacher's (schedule.prediction_type), or
    # epsilon, v_prediction, sample. The first student keeps the teacher's weights and reads its
    # output in the new parameterisation (x̂ converted at the output); the guided stage, which
    # trains at every t, is where it learns it. Stage folders record theirs (bsa_stage.json and
    # the scheduler config). Issue "Students that keep the teacher's quality", part 2
    student_prediction: str = ""
    # how records and reports name this run's weighting (make compare sets the spec it was given,
    # e.g. "bsa(floor=0.1,gamma=inf)"); empty: the weighting with its hyper-parameters (weighting_label)
    label: str = ""
    # each stage draws its own data order (seed + 1000 · stage) instead of the same order every stage
    fresh_data_order: bool = False
    # spacing ρ of the students' grids: the base grid t_i = round(T·(i/N)^ρ) − 1 of teacher_steps
    # points, thinned per halving; 1 = diffusers' trailing spacing; ρ > 1 puts more student steps
    # at SNR > 1 (issue "A weighting study…", part 4). The teacher's reference stays on its own grid.
    grid_power: float = 1.0
    checkpoint_every: int = 100  # optimizer steps between atomic last.ckpt writes
    stop_after: int = 0  # end this invocation after N optimizer steps (0 = run to the end); rerun to continue
    eval_clips: int = 16  # captions of the test split scored after every stage (FAD/CLAP vs the teacher)
    # the student step counts whose stages are scored, e.g. [25, 4] (a weighting study reads only
    # those students: each scoring of 1000 captions costs about as much as a stage's training);
    # empty: every stage. Each must be a step count of the plan.
    score_steps: list = field(default_factory=list)
    run_name: str = ""  # default: <preset>-<weighting>-seed<seed>; the same name resumes
    reference_teacher: str = ""  # whose outputs "FAD vs teacher" uses (default models.teacher, with CFG)
    # weighting specs (compare.weightings' syntax) trained at once as one population in this process,
    # each in its own run folder <weighting slug>-seed<seed> (bsa.experiment.population); progressive
    # stages from a guided teacher (distill.guided_stage=false). Empty: one run, distill.weighting.
    population: list = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(
            self.weighting in WEIGHTINGS,
            "distill.weighting",
            f"unknown {self.weighting!r}; expected one of {sorted(WEIGHTINGS)}",
        )
        try:
            DistillationPlan(self.teacher_steps, self.target_steps)
        except ValueError as e:
            raise ConfigError(f"distill.target_steps: {e}") from None
        _check(
            0 <= self.bsa_floor <= self.bsa_gamma and self.bsa_gamma > 0,
            "distill.bsa_floor/bsa_gamma",
            "need 0 <= bsa_floor <= bsa_gamma, bsa_gamma > 0 (inf allowed: no cap)",
        )
        _check(self.min_snr_gamma > 0, "distill.min_snr_gamma", "must be > 0")
        try:
            from bsa.diffusion.schedules import step_grid

            step_grid(self.teacher_steps, 1000, self.grid_power)
        except ValueError as e:
            raise ConfigError(f"distill.grid_power: {e}") from None
        _check(
            self.guidance_scale >= 1.0,
            "distill.guidance_scale",
            f"must be >= 1 (1 = no guidance), got {self.guidance_scale}",
        )
        _check(
            0 <= self.guidance_min <= self.guidance_max,
            "distill.guidance_min/guidance_max",
            "need 0 <= guidance_min <= guidance_max",
        )
        _check(self.steps_per_stage >= 1, "distill.steps_per_stage", "must be >= 1")
        _check(
            self.guided_steps >= 1 or not self.guided_stage,
            "distill.guided_steps",
            "must be >= 1 (to run without the guided stage, set distill.guided_stage=false)",
        )
        _check(self.lr > 0, "distill.lr", f"learning rate must be positive, got {self.lr}")
        _check(self.weight_decay >= 0, "distill.weight_decay", "must be >= 0")
        _check(self.batch_size >= 1, "distill.batch_size", "must be >= 1")
        _check(0 <= self.ema_decay < 1, "distill.ema_decay", "must be in [0, 1)")
        _check(self.checkpoint_every >= 1, "distill.checkpoint_every", "must be >= 1")
        _check(
            self.student_prediction in ("", "epsilon", "v_prediction", "sample"),
            "distill.student_prediction",
            f"unknown {self.student_prediction!r}; expected epsilon, v_prediction or sample (empty: the teacher's)",
        )
        _check(self.stop_after >= 0, "distill.stop_after", "must be >= 0")
        _check(self.eval_clips == 0 or self.eval_clips >= 2, "distill.eval_clips", "0 (off) or >= 2")
        plan_steps = [stage.student_steps for stage in self.plan.stages]
        _check(
            all(isinstance(n, int) and n in plan_steps for n in self.score_steps),
            "distill.score_steps",
            f"{list(self.score_steps)}: each must be a step count of the plan, one of {sorted(set(plan_steps))}",
        )
        _check_weightings(self.population, "distill.population")
        _check_weightings(
            [self.guided_weighting] if self.guided_weighting else [], "distill.guided_weighting"
        )
        _check(
            not self.population or not self.guided_stage,
            "distill.population",
            "trains progressive stages from a guided teacher: set distill.guided_stage=false and "
            "models.teacher to the guided stage's folder (bsa compare does)",
        )

    @property
    def plan(self) -> DistillationPlan:
        """Every stage of the run, the guided stage included (``guided_stage``)."""
        return DistillationPlan(self.teacher_steps, self.target_steps, self.guided_stage)

    def scores(self, stage) -> bool:
        """Whether ``stage`` (a :class:`bsa.diffusion.Stage`) is scored at its end."""
        return bool(self.eval_clips) and (not self.score_steps or stage.student_steps in self.score_steps)

    def weighting_kwargs_of(self, weighting: str) -> dict[str, float]:
        """The hyper-parameters this config gives ``weighting``, by the one table :data:`WEIGHTING_PARAMETERS`."""
        return {arg: getattr(self, key) for arg, key in WEIGHTING_PARAMETERS.get(weighting, {}).items()}

    @property
    def weighting_label(self) -> str:
        """How records and reports name this run's weighting: ``label``, else the weighting with its
        hyper-parameters (:func:`weighting_spec`: ``bsa`` only at the paper's (1, 5))."""
        return self.label or weighting_spec(self.weighting, self.weighting_kwargs)

    @property
    def weighting_kwargs(self) -> dict[str, float]:
        """The hyper-parameters of the configured ``weighting``."""
        return self.weighting_kwargs_of(self.weighting)

    def stage_weighting(self, mode: str) -> tuple[str, dict[str, float]]:
        """The weighting and its hyper-parameters that a stage of ``mode`` ("guided", "progressive")
        trains with: the guided stage's own where ``guided_weighting`` is set (:func:`spec_weighting`),
        else ``weighting`` with this config's hyper-parameters."""
        if mode == "guided" and self.guided_weighting:
            return spec_weighting(self.guided_weighting)
        return self.weighting, self.weighting_kwargs

    @property
    def guided_weighting_label(self) -> str:
        """The guided stage's own weighting as records name it (one spelling, :func:`weighting_spec`),
        or "" where the run has no guided stage or its guided stage takes ``weighting``."""
        if not (self.guided_stage and self.guided_weighting):
            return ""
        return weighting_spec(*self.stage_weighting("guided"))

    def stage_weighting_label(self, mode: str) -> str:
        """How the records of a stage of ``mode`` name its weighting: the guided stage's own
        (:attr:`guided_weighting_label`) where it has one, else :attr:`weighting_label`."""
        return (mode == "guided" and self.guided_weighting_label) or self.weighting_label

    def optimizer_steps(self, stage) -> int:
        """Optimizer steps of ``stage`` (a :class:`bsa.diffusion.Stage`)."""
        return self.guided_steps if stage.mode == "guided" else self.steps_per_stage


COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DDP_COMM_HOOKS = ("none", "bf16", "fp16")  # trainer.ddp_comm_hook: bsa.callbacks.ddp
# `bsa bench --what ddp --comm-hook noop` only, never a training's (trainer.ddp_comm_hook refuses it):
# the buckets are not exchanged at all, so the ranks drift apart; a 2-GPU step without its
# communication tells what the all-reduce costs from what the rest of DDP does
DIAGNOSTIC_COMM_HOOKS = ("noop",)
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


@dataclass
class TrainerConfig:
    """Forwarded to ``lightning.Trainer``."""

    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    precision: str = "32-true"
    seed: int = 0
    log_every_n_steps: int = 10
    # torch.compile of the teacher's and the student's denoiser calls: "off" or a torch.compile
    # mode; the parameters and checkpoints are those of the eager modules either way
    compile: str = "off"
    compile_backend: str = "inductor"  # "aot_eager" traces without generating kernels (tests, debugging)
    # with compile on: compile only the UNets' repeated transformer and resnet blocks, in place
    # (regional compilation: each block type compiles once, a fraction of the whole graph's warm-up);
    # with cuda_graphs too, only the student's blocks, the teacher's calls replayed from graphs
    compile_regions: bool = False
    # float32 matmuls: "highest" (exact fp32, torch's default), "high" (TF32 tensor cores), "medium"
    matmul_precision: str = "highest"
    # CUDA graphs of the teacher's and the student's training calls without compiling
    # (bsa.models.graphs): one launch per call instead of hundreds, for launch-bound small models;
    # single-process runs (DDP steps eagerly); with compile on, only the teacher's calls and only
    # beside compile_regions (whole-call compile's reduce-overhead mode is the compiled way to graphs)
    cuda_graphs: bool = False
    # cuDNN times its convolution algorithms for each new shape and keeps the fastest (Lightning's
    # ``benchmark``): a population's grouped convolutions step 10 % faster on an H200
    # (results/bench/2026-11-29-population-speed); a run's numbers may then differ in the last digits
    cudnn_benchmark: bool = False
    # DDP (more than one rank): gradient bucket size in MB, the gradients kept as views of the
    # buckets; 100 measured best for the 185 M UNet on 2 H100 (1.74× one GPU against 1.63× at
    # torch's 25 and 1.40× at 5: results/bench/2026-11-28-ddp)
    ddp_bucket_mb: float = 100.0
    # DDP: how the gradient buckets travel between the ranks — "none" (float32, as the gradients
    # are), or "bf16"/"fp16" (torch's compression hooks: each bucket all-reduced in half precision,
    # half the bytes; the averaged gradients are rounded once before the optimizer step, which a
    # run's numbers show — so off unless chosen)
    ddp_comm_hook: str = "none"
    # GroupNorm in the autocast dtype (bf16-mixed/16-mixed precision) instead of float32, where
    # CUDA's autocast puts it: the norm's output and the SiLU after it stay bf16 between the bf16
    # convolutions (statistics still accumulated in float32). A run's single-student stages
    # (bsa.models.unet.AutocastDtypeGroupNorm); float32 precision: no change
    low_precision_norms: bool = False

    def __post_init__(self) -> None:
        _check(self.num_nodes >= 1, "trainer.num_nodes", "must be >= 1")
        _check(self.ddp_bucket_mb > 0, "trainer.ddp_bucket_mb", f"must be > 0, got {self.ddp_bucket_mb}")
        _check(
            self.ddp_comm_hook in DDP_COMM_HOOKS,
            "trainer.ddp_comm_hook",
            f"unknown {self.ddp_comm_hook!r}; expected one of {', '.join(DDP_COMM_HOOKS)}",
        )
        # YAML reads a bare off/on/true/false as a boolean, which arrives here as "False"/"True"
        self.compile = {"false": "off", "true": "default"}.get(str(self.compile).lower(), self.compile)
        _check(
            self.compile in COMPILE_MODES,
            "trainer.compile",
            f"unknown {self.compile!r}; expected one of {', '.join(COMPILE_MODES)}",
        )
        _check(
            self.matmul_precision in ("highest", "high", "medium"),
            "trainer.matmul_precision",
            f"unknown {self.matmul_precision!r}; expected highest, high or medium",
        )
        _check(
            self.compile_backend in COMPILE_BACKENDS,
            "trainer.compile_backend",
            f"unknown {self.compile_backend!r}; expected one of {', '.join(COMPILE_BACKENDS)}",
        )
        _check(
            self.accelerator in ("auto", "cpu", "gpu", "cuda", "mps"),
            "trainer.accelerator",
            f"unknown {self.accelerator!r}",
        )

    def sampling_compile_kwargs(self, mode: str) -> dict | None:
        """torch.compile keyword arguments for sampling in ``mode`` (``eval.compile``), None when off."""
        return (
            None
            if mode == "off"
            else {"mode": None if mode == "default" else mode, "backend": self.compile_backend}
        )

    def compile_kwargs(self) -> dict | None:
        """Keyword arguments of ``torch.compile`` (None when off)."""
        if self.compile == "off":
            return None
        return {"mode": None if self.compile == "default" else self.compile, "backend": self.compile_backend}


@dataclass
class DataConfig:
    """Where the captioned audio lives and how it is cached (SPEC §1, §7)."""

    dataset: str = "embedded"  # "embedded" (generated by `make data`) or "audiocaps" (bring your own)
    root: str = "data/embedded"  # {split}.csv + audio/{split}/ (AudioCaps layout)
    cache_dir: str = "data/cache/embedded"
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])
    clip_seconds: float = 2.56
    shard_size: int = 1024
    encode_batch_size: int = 32
    min_seconds: float = 0.5  # shorter clips are skipped (and reported), longer are padded
    num_workers: int = 2
    # hold the whole train split on the training device and draw batches there (no loader
    # workers): for small models, whose steps are shorter than a Python loader takes to batch them
    resident: bool = False
    # the embedded generator
    seed: int = 0
    train_clips: int = 4000
    val_clips: int = 400
    test_clips: int = 400

    def __post_init__(self) -> None:
        _check(
            self.dataset in ("embedded", "audiocaps"),
            "data.dataset",
            f"unknown {self.dataset!r}; expected embedded or audiocaps",
        )
        _check(0.5 <= self.clip_seconds <= 10.24, "data.clip_seconds", "must be in [0.5, 10.24] s")
        _check(
            round(self.clip_seconds * 100) % 4 == 0
            and abs(self.clip_seconds * 100 - round(self.clip_seconds * 100)) < 1e-6,
            "data.clip_seconds",
            "must give a mel frame count (100 per second) divisible by 4, e.g. 2.56 or 10.24",
        )
        _check(
            self.shard_size >= 1 and self.encode_batch_size >= 1,
            "data.shard_size/encode_batch_size",
            "must be >= 1",
        )
        _check(min(self.train_clips, self.val_clips, self.test_clips) >= 0, "data.*_clips", "must be >= 0")
        _check(
            len(self.splits) > 0 and all(sp in ("train", "val", "test") for sp in self.splits),
            "data.splits",
            f"must be a non-empty subset of train, val, test; got {self.splits}",
        )


@dataclass
class ModelsConfig:
    """Model folders (diffusers layout) and the text encoder."""

    teacher: str = "embedded:teacher"  # the UNet folder (AudioLDM's unet/, or the shipped embedded teacher)
    evaluator: str = "embedded:evaluator"
    # the shipped mel → magnitude vocoder ahead of Griffin-Lim; "griffin-lim" (no weights: the mel's
    # least-squares inverse), or AudioLDM's vocoder/ folder (SpeechT5HifiGan)
    vocoder: str = "embedded:vocoder"
    vae: str = "embedded:vae"  # "embedded:<name>" = a model shipped in bsa/assets/, or a path (AudioLDM vae/)
    text_encoder: str = "minilm"  # "minilm" (embedded, no download) or AudioLDM's text_encoder/ folder


@dataclass
class VAETrainConfig:
    size: str = "embedded"
    steps: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    kl_weight: float = 1e-4
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit
    out: str = "bsa/assets/vae"


@dataclass
class TeacherTrainConfig:
    size: str = "embedded"
    steps: int = 20000
    batch_size: int = 128
    lr: float = 3e-4
    cond_drop_prob: float = 0.1
    ema_decay: float = 0.999
    # x-space loss weight of teacher training (bsa.diffusion.WEIGHTINGS): "snr" is the plain ε-MSE
    # of ε-prediction; "min_snr" with min_snr_gamma is Min-SNR-γ (Hang et al. 2023)
    weighting: str = "snr"
    min_snr_gamma: float = 5.0
    val_every: int = 2000
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit
    out: str = "bsa/assets/teacher"


@dataclass
class EvaluatorTrainConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit
    out: str = "bsa/assets/evaluator"


@dataclass
class VocoderTrainConfig:
    # hifigan: HiFi-GAN's generator (SpeechT5HifiGan); magnitude: a mel → linear-magnitude network
    # ahead of Griffin-Lim (bsa.models.vocoder.MagnitudeVocoder; `size` is HiFi-GAN's only)
    kind: str = "hifigan"
    size: str = "embedded"  # bsa.models.vocoder.HIFIGAN_SIZES
    steps: int = 6000
    batch_size: int = 32
    lr: float = 2e-4
    segment_seconds: float = 0.64  # random crops of the training clips (a multiple of the 10 ms hop)
    max_clips: int = 0  # train on the first N clips of the train split (0 = all)
    # HiFi-GAN's adversarial training (multi-period + multi-scale discriminators, feature matching)
    # on top of the mel loss; off: mel L1 + multi-resolution STFT only
    adversarial: bool = False
    # kind=magnitude: the weight of the spectral-convergence term beside the log-magnitude L1
    # (Parallel WaveGAN's STFT loss; it weights the loud bins the log spends nothing on); 0: the
    # log-magnitude L1 alone (the first CPU run)
    spectral_convergence: float = 1.0
    max_minutes: float = 0.0  # stop (and export) after this wall time; 0 = no limit
    out: str = "bsa/assets/vocoder"


@dataclass
class TrainConfig:
    """Training the embedded models from scratch (`make vae teacher evaluator`)."""

    vae: VAETrainConfig = field(default_factory=VAETrainConfig)
    teacher: TeacherTrainConfig = field(default_factory=TeacherTrainConfig)
    evaluator: EvaluatorTrainConfig = field(default_factory=EvaluatorTrainConfig)
    vocoder: VocoderTrainConfig = field(default_factory=VocoderTrainConfig)
    # optimizer steps between atomic checkpoints under <paths.output_root>/train-<model>/ (a killed
    # `make teacher` resumes from there; the shipped folder is written only once training is done)
    checkpoint_every: int = 500
    # end this invocation after N minutes of wall time with a checkpoint and no export (exit 3);
    # the same command continues (for jobs longer than one allocation). 0 = run to the end
    stop_after_minutes: float = 0.0

    def __post_init__(self) -> None:
        _check(self.stop_after_minutes >= 0, "train.stop_after_minutes", "must be >= 0")
        for name in ("vae", "teacher", "evaluator", "vocoder"):
            sub = getattr(self, name)
            _check(sub.steps >= 1 and sub.batch_size >= 1, f"train.{name}.steps/batch_size", "must be >= 1")
            _check(sub.lr > 0, f"train.{name}.lr", f"learning rate must be positive, got {sub.lr}")
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1")
        _check(self.vae.size in ("tiny", "embedded"), "train.vae.size", f"unknown {self.vae.size!r}")
        _check(
            self.vocoder.kind in ("hifigan", "magnitude"),
            "train.vocoder.kind",
            f"unknown {self.vocoder.kind!r}; expected hifigan or magnitude",
        )
        _check(
            self.vocoder.size in ("tiny", "embedded"), "train.vocoder.size", f"unknown {self.vocoder.size!r}"
        )
        _check(
            round(self.vocoder.segment_seconds * 100) == self.vocoder.segment_seconds * 100
            and self.vocoder.segment_seconds > 0,
            "train.vocoder.segment_seconds",
            "must be a positive multiple of 0.01 s (the mel hop)",
        )
        _check(0 <= self.teacher.cond_drop_prob < 1, "train.teacher.cond_drop_prob", "must be in [0, 1)")
        _check(
            self.teacher.weighting in WEIGHTINGS,
            "train.teacher.weighting",
            f"unknown {self.teacher.weighting!r}; expected one of {sorted(WEIGHTINGS)}",
        )


@dataclass
class EvalConfig:
    """The evaluation protocol (SPEC §6): fixed captions (the first num_clips of a split), fixed seeds."""

    # the model `bsa generate` and `bsa evaluate` sample: a teacher or an exported stage folder
    # (default: models.teacher, the teacher distillation starts from)
    model: str = ""
    split: str = "test"
    num_clips: int = 400
    seed: int = 1234  # clip i uses noise seed seed + i
    steps: int = 200
    guidance_scale: float = 2.5
    # [t_lo, t_hi]: guidance only at the steps whose timestep lies in it, scale 1 at the others
    # (Kynkäänniemi et al. 2024); [] everywhere. `bsa evaluate`/`bsa generate` only
    guidance_interval: list[int] = field(default_factory=list)
    batch_size: int = 200
    # torch.compile of the denoiser's calls when sampling (bsa generate, bsa evaluate, every
    # stage's evaluation): "reduce-overhead" = CUDA graphs; backend from trainer.compile_backend
    compile: str = "off"
    # CUDA graphs of the denoiser's calls when sampling, without compiling (bsa.models.graphs):
    # one graph per batch shape, captured in the first batch
    cuda_graphs: bool = False
    baselines: bool = True  # also score the real clips (ceiling), their VAE+vocoder reconstruction, shuffled captions (floor)
    # with a reference teacher: also generate it with other initial noise, for the floor of "FAD vs
    # teacher" (no model is closer to the teacher in distribution than the teacher to itself)
    teacher_floor: bool = True
    # `bsa evaluate`: pair the model with the reference teacher (the teacher's outputs for the same
    # captions and noise: FAD vs teacher, the paired metrics); false leaves the teacher unsampled
    paired: bool = True
    # distillation: each stage's error profile also measures the weighted loss's gradient norm per
    # student step (a backward pass per step on ≤ 16 clips; issue "A weighting study…")
    profile_gradients: bool = True
    # each final record's per-clip evaluation embedding beside it (<run>/embeddings/, N × 256 floats
    # = 1 MB at 1000 clips): what paired FAD differences between runs need (bsa study)
    keep_embeddings: bool = True
    out: str = "runs/eval"
    fad_backbone: str = "embedded"  # or a frechet-audio-distance model: vggish | pann | clap | encodec
    backbone_dir: str = (
        "checkpoints/fad"  # frechet-audio-distance's ckpt_dir (files under their download names)
    )
    clap_checkpoint: str = (
        ""  # a laion-clap .pt for the CLAP score; empty: the embedded evaluator's joint space
    )
    every_n_steps: int = (
        0  # distillation: also evaluate every K optimizer steps (0: only at the end of each stage)
    )
    reference_cache: str = (
        ""  # distillation: a file keeping the real/teacher reference statistics (make compare shares one)
    )
    showcase: int = (
        4  # distillation: audio + spectrogram of the first K captions per stage (W&B table, dashboard)
    )

    def __post_init__(self) -> None:
        _check(self.split in ("train", "val", "test"), "eval.split", f"unknown {self.split!r}")
        _check(self.num_clips >= 2, "eval.num_clips", "need at least 2 clips for a Fréchet distance")
        _check(self.steps >= 1 and self.batch_size >= 1, "eval.steps/batch_size", "must be >= 1")
        _check(self.guidance_scale >= 1.0, "eval.guidance_scale", "must be >= 1")
        g = list(self.guidance_interval)
        _check(
            not g or (len(g) == 2 and 0 <= g[0] <= g[1]),
            "eval.guidance_interval",
            f"expected [] or [t_lo, t_hi] with 0 <= t_lo <= t_hi, got {g}",
        )
        backbones = ("embedded", "vggish", "pann", "clap", "encodec")
        _check(
            self.fad_backbone in backbones,
            "eval.fad_backbone",
            f"unknown {self.fad_backbone!r}; expected one of {backbones}",
        )
        _check(self.every_n_steps >= 0 and self.showcase >= 0, "eval.every_n_steps/showcase", "must be >= 0")
        _check(
            self.compile in COMPILE_MODES,
            "eval.compile",
            f"unknown {self.compile!r}; expected one of {', '.join(COMPILE_MODES)}",
        )


@dataclass
class CompareConfig:
    """``make compare``: one distillation per weighting (and seed) from the same teacher (SPEC §7)."""

    weightings: list = field(
        default_factory=lambda: ["bsa", "truncated_snr", "snr_plus_one", "min_snr", "constant"]
    )
    seeds: list = field(default_factory=lambda: [0])
    id: str = ""  # default: <preset>-<target_steps>steps; runs go to paths.output_root/compare/<id>/
    parallel: int = 1  # runs at once (processes sharing the machine)
    # > 0: the weightings of a seed train as populations of up to this many students, one process
    # each (distill.population): the members share the GPU's work instead of time-slicing it
    population: int = 0
    audio_steps: list = field(default_factory=lambda: [25, 4, 1])  # dashboard: students whose clips are shown

    def __post_init__(self) -> None:
        _check_weightings(self.weightings, "compare.weightings")
        _check(
            len(self.weightings) >= 1 and len(self.seeds) >= 1,
            "compare.weightings/seeds",
            "must not be empty",
        )
        _check(self.parallel >= 1, "compare.parallel", "must be >= 1")
        _check(self.population >= 0, "compare.population", "must be >= 0 (0: one process per run)")


@dataclass
class LoggingConfig:
    # every stage's metrics, config, plan and sample table to Weights & Biases (one run per stage,
    # grouped by the distillation run), beside the CSV logs; offline runs go under the run folder
    # (`wandb sync runs/<run>/wandb/offline-run-*`). Without the wandb package: CSV only, said once.
    wandb: bool = True
    wandb_project: str = "bsa"
    wandb_mode: str = "auto"  # auto: online when logged in (WANDB_API_KEY or ~/.netrc), offline otherwise
    wandb_group: str = ""  # W&B group of the stage runs; empty: the distillation run's name

    def __post_init__(self) -> None:
        _check(
            self.wandb_mode in ("auto", "offline", "online", "disabled"),
            "logging.wandb_mode",
            f"unknown {self.wandb_mode!r}; expected auto, offline, online or disabled",
        )


@dataclass
class BsaConfig:
    preset: str = MISSING  # name of the experiment preset, recorded with every run
    paths: PathsConfig = field(default_factory=PathsConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        _check(
            not (self.trainer.low_precision_norms and (self.distill.population or self.compare.population)),
            "trainer.low_precision_norms",
            "not with a population (distill.population, compare.population): its GroupNorm is a batchable "
            "kernel of its own",
        )


_SECTIONS = {name: obj for name, obj in dict(globals()).items() if dataclasses.is_dataclass(obj)}


def _known_keys(schema: type = BsaConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, for "did you mean" hints."""
    keys = []
    for f in dataclasses.fields(schema):
        keys.append(prefix + f.name)
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
            keys.extend(_known_keys(f.type, prefix + f.name + "."))
        elif isinstance(f.type, str) and f.type in _SECTIONS:
            keys.extend(_known_keys(_SECTIONS[f.type], prefix + f.name + "."))
    return keys


def _explain(e: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(e, "full_key", None) or ""
    message = str(getattr(e, "msg", e)).splitlines()[0]
    if isinstance(e, ConfigKeyError):
        close = difflib.get_close_matches(key, _known_keys(), n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        return ConfigError(f"{source}: unknown config key {key!r}{hint}")
    if isinstance(e, ValidationError):
        return ConfigError(f"{source}: bad value for {key!r}: {message}")
    return ConfigError(f"{source}: {message}")


def split_items(items: list[str]) -> tuple[list[str], list[str]]:
    """A command line's items: YAML files, then ``key=value`` overrides (files must come first)."""
    files, overrides = [], []
    for item in items:
        if "=" in item:
            overrides.append(item)
        elif overrides:
            raise ConfigError(f"command line: config file {item!r} given after overrides; put files first")
        else:
            files.append(item)
    return files, overrides


def load_config(files: list[str | Path] = (), overrides: list[str] = ()) -> BsaConfig:
    """Schema defaults ← each YAML in ``files`` ← ``overrides`` (``key=value``), validated."""
    return _resolved(OmegaConf.structured(BsaConfig).copy(), files, overrides)


def load_config_from(cfg: BsaConfig, overrides: list[str]) -> BsaConfig:
    """``cfg`` ← ``overrides``, validated: a run's config derived from another's (a population's
    members)."""
    return _resolved(OmegaConf.structured(cfg), (), overrides)


def _resolved(cfg, files, overrides) -> BsaConfig:
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        except OmegaConfBaseException as e:
            raise _explain(e, str(path)) from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"command line: override {item!r} is not of the form key=value")
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as e:
            raise _explain(e, f"command line {item!r}") from None
    if OmegaConf.is_missing(cfg, "preset"):
        raise ConfigError(
            "preset: no experiment preset given (pass experiments/<preset>.yaml or preset=<name>)"
        )
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        cause = e.__cause__ if isinstance(e.__cause__, ConfigError) else None
        if cause is not None:
            raise ConfigError(str(cause)) from None
        raise _explain(e, "config") from None
    assert isinstance(obj, BsaConfig)
    return obj


def to_yaml(cfg: BsaConfig) -> str:
    """The resolved config as YAML, to be written next to every run's outputs."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
