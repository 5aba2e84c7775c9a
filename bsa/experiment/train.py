"""Training the embedded models (``bsa train {vae,teacher,evaluator}``).

Train an embedded model from scratch and write it in diffusers' ``save_pretrained`` layout to
``train.<model>.out`` (default ``bsa/assets/<model>``), with ``training.json``: the resolved config,
the data set hash and the training curve.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bsa.config import BsaConfig, to_yaml

MODELS = ("vae", "teacher", "evaluator")


class CurveRecorder:
    """A Lightning callback that keeps every logged scalar (for training.json)."""

    def __new__(cls):
        import lightning.pytorch as pl

        class _Recorder(pl.Callback):
            def __init__(self):
                self.rows: list[dict] = []
                self.seconds_before = 0.0  # training time of earlier invocations (resumed runs)
                self.started = time.monotonic()

            @property
            def seconds(self) -> float:
                """Wall time spent training, over every invocation of a resumed run."""
                return self.seconds_before + time.monotonic() - self.started

            def _record(self, trainer, kind):
                row = {"step": trainer.global_step, "kind": kind}
                row.update(
                    {k: round(float(v), 6) for k, v in trainer.callback_metrics.items() if k.startswith(kind)}
                )
                if len(row) > 2:
                    self.rows.append(row)

            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
                    self._record(trainer, "train")

            def on_validation_end(self, trainer, pl_module):
                self._record(trainer, "val")

            def state_dict(self):  # the curve travels in the checkpoint: a resumed run keeps it whole
                return {"rows": self.rows, "seconds": self.seconds}

            def load_state_dict(self, state):
                self.rows = list(state["rows"])
                self.seconds_before, self.started = float(state.get("seconds", 0.0)), time.monotonic()

        return _Recorder()


class TrainingUnfinished(RuntimeError):
    """Stopped by ``train.stop_after_minutes`` before the last step: checkpointed, not exported."""


def _checkpoints(cfg: BsaConfig, what: str):
    from bsa.callbacks.checkpoint import AtomicLastCheckpoint

    return AtomicLastCheckpoint(Path(cfg.paths.output_root) / f"train-{what}", cfg.train.checkpoint_every)


def _fit(
    cfg: BsaConfig, what: str, module, train, val, steps: int, val_every, callbacks, max_minutes=0.0, clip=1.0
):
    """``trainer.fit`` with atomic checkpoints under ``<output_root>/train-<what>/``: a killed run
    resumes from the newest one (SLURM pre-emption checkpoints included)."""
    import datetime

    from bsa.callbacks.checkpoint import StopAfterMinutes
    from bsa.experiment.build import lightning_trainer

    checkpoint = _checkpoints(cfg, what)
    stopper = StopAfterMinutes(cfg.train.stop_after_minutes)
    resume = checkpoint.resume_path()
    if resume is not None:
        print(f"resuming from {resume}", flush=True)
    trainer = lightning_trainer(
        cfg,
        max_time=datetime.timedelta(minutes=max_minutes) if max_minutes > 0 else None,
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        callbacks=[*callbacks, stopper, checkpoint],  # last: it saves what the others recorded of the step
        val_check_interval=val_every,
        check_val_every_n_epoch=None if val_every else 1,
        num_sanity_val_steps=0,
        gradient_clip_val=clip,  # None for a module that clips its own (manual optimisation)
        default_root_dir=checkpoint.folder,
    )
    trainer.fit(module, train, val, ckpt_path=resume, weights_only=True)
    if stopper.triggered and trainer.global_step < steps:
        raise TrainingUnfinished(
            f"{what}: stopped at step {trainer.global_step}/{steps} (train.stop_after_minutes="
            f"{cfg.train.stop_after_minutes:g}); run the same command again to continue from {checkpoint.path}"
        )
    return trainer


def _export(cfg: BsaConfig, what: str, out: Path, write) -> Path:
    """``write(folder)`` into ``<out>.tmp``, then one durable rename onto ``out`` (a kill leaves the
    previous model whole); the training checkpoints go once the model is in place."""
    import shutil

    from bsa.durable import replace_durably

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    replace_durably(tmp, out)
    shutil.rmtree(_checkpoints(cfg, what).folder, ignore_errors=True)
    return out


def _save_half(model, folder: Path) -> None:
    """``save_pretrained`` with float16 weights: half the bytes in the repository, the wheel and a
    GPU job's carry. Every loader casts them to float32 (diffusers to the model's dtype,
    ``load_vocoder`` explicitly); the rounding (relative 2⁻¹¹) is far below what training resolves."""
    import copy

    copy.deepcopy(model).float().half().save_pretrained(folder)


def _dataset_info(cfg: BsaConfig) -> dict:
    path = Path(cfg.data.root) / "DATASET.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_record(out: Path, cfg: BsaConfig, what: str, curve: list, extra: dict, seconds: float) -> None:
    record = {
        "model": what,
        "trained_for_seconds": round(seconds, 1),
        "dataset": _dataset_info(cfg),
        **extra,
        "curve": curve,
        "config": to_yaml(cfg),
    }
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")


def _splits(cfg: BsaConfig):
    from bsa.data.encode import SplitSource

    root = Path(cfg.data.root)
    return {s: SplitSource(root / f"{s}.csv", root / "audio" / s) for s in ("train", "val")}


def train_vae(cfg: BsaConfig) -> Path:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from bsa.data.clips import load_mel_split
    from bsa.lit.vae import VAEModule
    from bsa.models.autoencoder import mel_vae_config

    c = cfg.train.vae
    splits = {k: load_mel_split(v, cfg.data.clip_seconds) for k, v in _splits(cfg).items()}
    module = VAEModule(mel_vae_config(c.size), lr=c.lr, kl_weight=c.kl_weight, total_steps=c.steps)
    recorder = CurveRecorder()
    train = DataLoader(
        TensorDataset(splits["train"].mels),
        batch_size=c.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=0,
    )
    val = DataLoader(TensorDataset(splits["val"].mels), batch_size=c.batch_size)
    _fit(cfg, "vae", module, train, val, c.steps, min(1000, c.steps), [recorder], c.max_minutes)
    vae = module.vae.float().eval()
    # scaling factor: unit variance of the latents over the training set (as Stable Diffusion's 0.18215)
    with torch.no_grad():
        z = torch.cat(
            [
                vae.encode(m.unsqueeze(1).to(vae.device)).latent_dist.mean.cpu()
                for m in splits["train"].mels[:1024].split(128)
            ]
        )
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))

    def write(folder: Path) -> None:
        _save_half(vae, folder)
        _write_record(folder, cfg, "vae", recorder.rows, {"latent_std": float(z.std())}, recorder.seconds)

    return _export(cfg, "vae", Path(c.out), write)


def train_teacher(cfg: BsaConfig) -> Path:
    from bsa.experiment.build import latent_datamodule
    from bsa.lit.teacher import TeacherModule
    from bsa.models.unet import audioldm_unet_config

    c = cfg.train.teacher
    dm = latent_datamodule(cfg, c.batch_size, num_workers=min(8, cfg.data.num_workers))
    shape = dm.manifest.identity.latent_shape
    unet_config = audioldm_unet_config(
        c.size, dm.manifest.identity.text_encoder["dim"], shape[0], tuple(shape[1:])
    )
    module = TeacherModule(
        unet_config,
        dm.null_text_embedding,
        lr=c.lr,
        cond_drop_prob=c.cond_drop_prob,
        ema_decay=c.ema_decay,
        total_steps=c.steps,
        warmup_steps=min(500, c.steps // 10),
        prediction_type=cfg.schedule.prediction_type,
        schedule_kwargs=cfg.schedule.kwargs(),
        weighting=c.weighting,
        weighting_kwargs={"gamma": c.min_snr_gamma},
        compile=cfg.trainer.compile_kwargs(),
    )
    recorder = CurveRecorder()
    _fit(cfg, "teacher", module, dm, None, c.steps, min(c.val_every, c.steps), [recorder], c.max_minutes)

    def write(folder: Path) -> None:
        _save_half(module.export_unet(), folder)
        _write_record(
            folder,
            cfg,
            "teacher",
            recorder.rows,
            {
                "cache_identity": dm.manifest.identity.__dict__,
                "null_text_embedding": dm.null_text_embedding.tolist(),
            },
            recorder.seconds,
        )

    return _export(cfg, "teacher", Path(c.out), write)


def train_evaluator(cfg: BsaConfig) -> Path:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from bsa.data.clips import load_mel_split
    from bsa.data.embedded import LABELS
    from bsa.lit.evaluator import EvaluatorModule
    from bsa.models.text import load_text_encoder

    c = cfg.train.evaluator
    text = load_text_encoder(cfg.models.text_encoder)
    tensors = {}
    for name, source in _splits(cfg).items():
        split = load_mel_split(source, cfg.data.clip_seconds)
        labels = torch.tensor([[LABELS[k].index(m[k]) for k in LABELS] for m in split.meta])
        emb = torch.cat([text(split.captions[i : i + 256]) for i in range(0, len(split.captions), 256)])
        tensors[name] = TensorDataset(split.mels, emb, labels)
    module = EvaluatorModule({"labels": LABELS, "text_dim": text.dim}, lr=c.lr, total_steps=c.steps)
    recorder = CurveRecorder()
    _fit(
        cfg,
        "evaluator",
        module,
        DataLoader(tensors["train"], batch_size=c.batch_size, shuffle=True, drop_last=True),
        DataLoader(tensors["val"], batch_size=c.batch_size),
        c.steps,
        min(1000, c.steps),
        [recorder],
        c.max_minutes,
    )

    def write(folder: Path) -> None:
        _save_half(module.model, folder)
        _write_record(
            folder, cfg, "evaluator", recorder.rows, {"text_encoder": text.identity}, recorder.seconds
        )

    return _export(cfg, "evaluator", Path(c.out), write)


class RandomCrops:
    """A map-style data set of random ``length``-sample crops of ``waves`` [N, L] (one per index,
    from the DataLoader worker's seeded RNG)."""

    def __init__(self, waves, length: int, epoch_size: int):
        self.waves, self.length, self.epoch_size = waves, length, epoch_size

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, i: int):
        import torch

        clip = self.waves[torch.randint(len(self.waves), ()).item()]
        start = torch.randint(clip.shape[-1] - self.length + 1, ()).item()
        return (clip[start : start + self.length],)


def train_vocoder(cfg: BsaConfig) -> Path:
    """``train.vocoder.kind``: HiFi-GAN (SpeechT5HifiGan layout), or the mel → magnitude network
    ahead of Griffin-Lim, on random crops of the train clips; validated on the whole val clips."""
    from torch.utils.data import DataLoader, TensorDataset

    from bsa.data.clips import load_wave_split
    from bsa.data.datamodule import GroupSignalSafeDataLoader
    from bsa.lit.vocoder import MagnitudeVocoderModule, VocoderModule
    from bsa.models.vocoder import DISCRIMINATOR_WIDTHS, hifigan_config

    c = cfg.train.vocoder
    sources = _splits(cfg)
    train = load_wave_split(sources["train"], cfg.data.clip_seconds, limit=c.max_clips or None).waves
    val = load_wave_split(sources["val"], cfg.data.clip_seconds, limit=64).waves
    length = round(c.segment_seconds * 16000)
    warmup = min(200, c.steps // 10)
    if c.kind == "magnitude":
        module = MagnitudeVocoderModule(
            lr=c.lr, total_steps=c.steps, warmup_steps=warmup, spectral_convergence=c.spectral_convergence
        )
    else:
        module = VocoderModule(
            hifigan_config(c.size),
            lr=c.lr,
            total_steps=c.steps,
            warmup_steps=warmup,
            adversarial=c.adversarial,
            discriminator_width=DISCRIMINATOR_WIDTHS[c.size],
        )
    # Lightning counts every optimizer's step: the adversarial module steps two per batch
    adversarial = c.adversarial and c.kind == "hifigan"
    per_batch = 2 if adversarial else 1
    recorder = CurveRecorder()
    _fit(
        cfg,
        "vocoder",
        module,
        GroupSignalSafeDataLoader(
            RandomCrops(train, length, c.steps * c.batch_size),
            batch_size=c.batch_size,
            num_workers=min(4, cfg.data.num_workers),
            drop_last=True,
        ),
        DataLoader(TensorDataset(val), batch_size=16),
        c.steps * per_batch,
        min(1000, c.steps),
        [recorder],
        c.max_minutes,
        clip=None if adversarial else 1.0,  # the adversarial module clips its own
    )

    def write(folder: Path) -> None:
        _save_half(module.vocoder, folder)
        extra = {"kind": c.kind} | ({"size": c.size} if c.kind == "hifigan" else {})
        _write_record(folder, cfg, "vocoder", recorder.rows, extra, recorder.seconds)

    return _export(cfg, "vocoder", Path(c.out), write)


TRAINERS = {
    "vae": train_vae,
    "teacher": train_teacher,
    "evaluator": train_evaluator,
    "vocoder": train_vocoder,
}


def train_embedded(cfg: BsaConfig, what: str) -> Path:
    """Train the embedded ``what`` (a key of :data:`TRAINERS`) from ``trainer.seed``: its
    initial weights, data order, crops and dropout are the same on every run (they were drawn from
    an unseeded generator: two runs of one command trained different models)."""
    import lightning.pytorch as pl

    pl.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    return TRAINERS[what](cfg)
