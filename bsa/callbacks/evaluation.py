"""Evaluation during distillation (SPEC §6): every stage's student is scored on a fixed set of
captions and seeds, against the real clips and against the 200-step teacher's outputs.

``StageScorer`` does the work and is distributed-safe: each rank generates its share of the
captions (rank r takes clips r, r + W, …), the Gaussian statistics of the FAD embeddings are
all-reduced, the other features are gathered, and every rank computes the same numbers — no
metric is computed on rank 0 alone, so nothing waits on a rank that is not there.
``StageEvaluation`` is the Lightning callback: it runs the scorer at the end of the stage (and
every ``eval.every_n_steps`` optimizer steps if asked) and logs to every logger — scalars to all,
a table of captions with audio players and spectrograms to W&B — and rank 0 appends the record
to ``<run>/eval.jsonl`` and writes the showcase clips (Ogg + PNG) under ``<stage>/samples``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch

from bsa.audio import log_mel
from bsa.callbacks.timing import Laps
from bsa.diffusion import network_calls
from bsa.durable import append_jsonl, exclusive, read_jsonl, replace_durably
from bsa.metrics.embedded import AudioFeatures
from bsa.metrics.frechet import (
    GaussianStats,
    HalfSampleReplicates,
    frechet_from_stats,
    normal_interval,
)
from bsa.metrics.paired import paired_per_clip, per_clip_scores, summarise_paired
from bsa.metrics.scores import clip_levels, silence_floor
from bsa.metrics.suite import EvaluationSuite, score, stats_of

OTHER_NOISE = 1_000_000  # seed offset of the teacher's second draw (the teacher-vs-itself floor)


def _world() -> tuple[int, int]:
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d.get_rank(), d.get_world_size()
    return 0, 1


def gather_features(local: AudioFeatures) -> AudioFeatures:
    """The features of the whole set, identical on every rank and in the set's own order: rank r
    holds clips r, r + W, r + 2W, … (the scorer's split), so the gathered rows are put back in
    place — captions, targets and references are in that order. The input itself without DDP."""
    rank, world = _world()
    if world == 1:
        return local
    parts: list = [None] * world
    torch.distributed.all_gather_object(parts, local)
    return parts[0].cat(parts[1:]).select(_set_order(sum(p.embedding.shape[0] for p in parts), world))


def _set_order(n: int, world: int) -> torch.Tensor:
    """The permutation that puts rows gathered rank after rank back in the set's order."""
    return torch.argsort(torch.tensor([i for r in range(world) for i in range(r, n, world)]))


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """A per-clip tensor of the whole set, in its order (the split of :func:`gather_features`)."""
    rank, world = _world()
    if world == 1:
        return local
    parts: list = [None] * world
    torch.distributed.all_gather_object(parts, local.cpu())
    return torch.cat(parts)[_set_order(sum(p.shape[0] for p in parts), world)]


def reduced_stats(local: AudioFeatures) -> GaussianStats:
    """Sufficient statistics of the FAD embeddings, summed over ranks."""
    stats = stats_of(local)
    stats.all_reduce()
    return stats


@dataclass
class EvaluationSet:
    """The fixed evaluation captions: the first N clips of the cached test split."""

    ids: list[str]
    captions: list[str]
    text_emb: torch.Tensor  # [N, D]
    targets: dict[str, torch.Tensor] | None  # ground-truth attributes (embedded data)
    real_files: list[Path] | None  # the real clips' audio, when it is on disk (read on first use)
    seeds: list[int]
    num_samples: int = 0  # samples per real clip at 16 kHz
    _real: torch.Tensor | None = field(default=None, repr=False)

    @property
    def real(self) -> torch.Tensor | None:
        """[N, L] the real clips at 16 kHz, read the first time they are needed: the runs of a
        comparison take the real clips' statistics from its reference cache and never read them
        (17 runs starting at once each read 1000 clips before, for nothing)."""
        if self.real_files is None:
            return None
        if self._real is None:
            from bsa.audio import load_clip

            self._real = torch.stack([load_clip(f, 16000, self.num_samples).wave for f in self.real_files])
        return self._real

    @classmethod
    def from_config(cls, cfg, num_clips: int) -> EvaluationSet:
        from bsa.audio import num_samples_for
        from bsa.data.audiocaps import DatasetError, read_caption_csv, resolve_audio
        from bsa.data.datamodule import LatentShardStream
        from bsa.data.embedded import LABELS
        from bsa.data.manifest import CacheManifest

        manifest = CacheManifest.read(cfg.data.cache_dir)
        split = "test" if "test" in manifest.splits else next(iter(manifest.splits))
        items = []
        for item in LatentShardStream(
            cfg.data.cache_dir, split, manifest, shuffle=False, rank=0, world_size=1
        ):
            items.append(item)
            if len(items) == num_clips:
                break
        meta = [i["meta"] for i in items]
        targets = (
            {k: torch.tensor([LABELS[k].index(m[k]) for m in meta]) for k in LABELS}
            if meta and all(k in meta[0] for k in LABELS)
            else None
        )
        real_files = None
        root = Path(cfg.data.root)
        try:
            rows = {r.audiocap_id: r for r in read_caption_csv(root / f"{split}.csv")[0]}
            real_files = [resolve_audio(root / "audio" / split, rows[i["id"]]) for i in items]
        except (DatasetError, KeyError, FileNotFoundError) as e:
            print(f"evaluation: no FAD against real clips ({e})")
        return cls(
            [i["id"] for i in items],
            [i["caption"] for i in items],
            torch.stack([i["text_emb"] for i in items]),
            targets,
            real_files,
            [cfg.eval.seed + k for k in range(len(items))],
            num_samples_for(cfg.data.clip_seconds),
        )


REFERENCE_FORMAT = 2  # 2: the Griffin-Lim output aligned with the mel frames (2026-11-28)


def vocoder_weights_sha256(vocoder) -> str | None:
    """The sha256 of a trained vocoder's weights (two with one config can differ: the shipped one
    was retrained on 2026-11-28 with the same settings); None for a weightless one (Griffin-Lim)."""
    if next(vocoder.parameters(), None) is None:
        return None
    from bsa.models.identity import state_dict_sha256

    return state_dict_sha256(vocoder)


def waveform_protocol(vocoder) -> str:
    """How the scored waveforms were made, for a record's protocol: the vocoder (with its weights'
    hash when it has weights) and the format of its output (:data:`REFERENCE_FORMAT`); scores made
    another way are not pooled with these."""
    weights = vocoder_weights_sha256(vocoder)
    name = type(vocoder).__name__ + (f" {weights[:12]}" if weights else "")
    return f"{name}, waveform format {REFERENCE_FORMAT}"


def reference_identity(teacher, teacher_steps: int, guidance_scale: float, eval_set, vocoder) -> dict:
    """What a reference cache's contents depend on: the teacher's weights, its step count and
    guidance, the captions and their noise seeds, the vocoder, its settings and weights, and the format. A
    cache made under other facts is computed again (:meth:`StageScorer.ensure_references`)."""
    import hashlib

    from bsa.models.identity import state_dict_sha256

    config = getattr(vocoder, "config", None)
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    captions = json.dumps([list(eval_set.captions), list(eval_set.seeds)]).encode()
    return {
        "format": REFERENCE_FORMAT,
        "teacher (weights sha256)": state_dict_sha256(teacher.unet),
        "teacher_steps": teacher_steps,
        "guidance_scale": guidance_scale,
        "captions and seeds (sha256)": hashlib.sha256(captions).hexdigest(),
        "vocoder": type(vocoder).__name__,
        "vocoder config": {k: v for k, v in config.items() if not str(k).startswith("_")},
        **({"vocoder (weights sha256)": weights} if (weights := vocoder_weights_sha256(vocoder)) else {}),
    }


def save_references(
    path: Path,
    references: dict[str, GaussianStats],
    metrics: dict,
    clips: dict[str, torch.Tensor] | None = None,
    identity: dict | None = None,
) -> None:
    """The reference statistics (safetensors: tensors only, nothing executable) with the teacher's
    own scores and the cache's ``identity`` (:func:`reference_identity`) in its metadata and, for the
    paired metrics, its per-clip outputs (``clips``: name → [N, …] in the set's order), written
    atomically."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{name}.{field}": getattr(stats, field).detach().cpu().clone()
        for name, stats in references.items()
        for field in ("count", "total", "outer")
    }
    tensors.update({f"clip:{k}": v.detach().cpu().contiguous().clone() for k, v in (clips or {}).items()})
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    metadata = {"teacher_metrics": json.dumps(metrics), "identity": json.dumps(identity or {}, default=str)}
    save_file(tensors, str(tmp), metadata=metadata)
    replace_durably(tmp, path)


EMBEDDINGS = "embeddings"  # a run's folder of per-clip evaluation embeddings, one file per final record


def save_embedding(run_dir: Path, name: str, embedding: torch.Tensor) -> str:
    """A final record's per-clip evaluation embedding [N, D] (the set's order), atomically to
    ``<run_dir>/embeddings/<name>.safetensors``; returns the path relative to the run folder (what
    the record keeps). Paired FAD differences between runs need the clips, not only their
    statistics (``bsa.report.study.paired_fad_differences``)."""
    from safetensors.torch import save_file

    path = run_dir / EMBEDDINGS / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file({"embedding": embedding.detach().float().cpu().contiguous()}, str(tmp))
    replace_durably(tmp, path)
    return str(path.relative_to(run_dir))


def stale_reference_keys(path: Path, identity: dict) -> list[str]:
    """The facts of ``identity`` that the reference cache at ``path`` was made under otherwise
    (every one for a cache from before identities); [] when it may be used."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            stored = json.loads((f.metadata() or {}).get("identity", "{}"))
    except Exception:  # noqa: BLE001 — a foreign or torn file: load_references says which
        return []
    current = json.loads(json.dumps(identity, default=str))  # the form it has once read back
    return sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))


def load_references(path: Path) -> tuple[dict[str, GaussianStats], dict, dict[str, torch.Tensor]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
            metrics = json.loads(f.metadata()["teacher_metrics"])
    except Exception as e:  # noqa: BLE001 — a foreign or torn file: say which
        raise ValueError(
            f"{path}: not a bsa reference cache ({e}); delete it to compute the references again"
        ) from None
    clips = {k[len("clip:") :]: v for k, v in tensors.items() if k.startswith("clip:")}
    stats = {k: v for k, v in tensors.items() if not k.startswith("clip:")}
    names = sorted({k.split(".")[0] for k in stats})
    refs = {n: GaussianStats(stats[f"{n}.count"], stats[f"{n}.total"], stats[f"{n}.outer"]) for n in names}
    return refs, metrics, clips


class StageScorer:
    """Scores denoisers on an ``EvaluationSet`` with an ``EvaluationSuite``; the references (real
    clips, the teacher at its full step count with CFG) are computed once and kept."""

    def __init__(
        self,
        suite: EvaluationSuite,
        eval_set: EvaluationSet,
        vae,
        vocoder,
        null_text_emb: torch.Tensor,
        guidance_scale: float,
        base_steps: int,
        device: str,
    ):
        self.suite, self.set, self.vae, self.vocoder = suite, eval_set, vae, vocoder
        self.null, self.guidance_scale, self.base_steps, self.device = (
            null_text_emb,
            guidance_scale,
            base_steps,
            device,
        )
        self.references: dict[str, GaussianStats] = {}
        self.reference_cache: Path | None = (
            None  # shared by the runs of a comparison (same teacher, captions, seeds)
        )
        self.text_joint = suite.text_joint(eval_set.text_emb, eval_set.captions)
        self.teacher_floor = True  # also draw the teacher with other noise: the floor of FAD vs teacher
        self.teacher_clips: dict[str, torch.Tensor] | None = None  # its per-clip outputs, the set's order
        self.fad_floor: float | None = None
        self.teacher_metrics: dict[str, float] | None = None  # the teacher's own scores, once computed
        self.batch_size = 64  # clips per sampling batch (``eval.batch_size``)
        self.cuda_graphs = False  # sampling calls replayed as CUDA graphs (``eval.cuda_graphs``)
        self._half_samples = None  # (teacher embedding, its half-sample replicates, the floor's)
        # the students' base grid spacing (``distill.grid_power``); the teacher samples on its own
        self.grid_power = 1.0

    def generate(
        self, denoiser, steps: int, indices: list[int], seed_offset: int = 0, grid_power: float | None = None
    ):
        """Waveforms of the clips ``indices`` and the seconds it took (:meth:`generate_latents`)."""
        waves, _, seconds = self.generate_latents(denoiser, steps, indices, seed_offset, grid_power)
        return waves, seconds

    def generate_latents(
        self, denoiser, steps: int, indices: list[int], seed_offset: int = 0, grid_power: float | None = None
    ):
        """(waveforms, final latents on the CPU, seconds) of the clips ``indices``, from the
        noise seeds of the set (plus ``seed_offset``), on the students' grids (``grid_power``:
        another spacing, 1.0 for the teacher)."""
        from bsa.models.pipeline import TextToAudio

        was_training = denoiser.training
        pipe = TextToAudio(
            denoiser.eval(),
            self.vae,
            self.vocoder,
            None,
            self.null,
            self.base_steps,
            grid_power=self.grid_power if grid_power is None else grid_power,
            cuda_graphs=self.cuda_graphs,
        ).to(self.device)
        if self.device == "cuda":
            torch.cuda.synchronize()
        start, waves, latents = time.time(), [], []
        b = self.batch_size
        for chunk in [indices[i : i + b] for i in range(0, len(indices), b)]:
            z = pipe.latents(
                self.set.text_emb[chunk],
                [self.set.seeds[k] + seed_offset for k in chunk],
                steps,
                self.guidance_scale,
            )
            waves.append(pipe.waveforms(z))
            latents.append(z.cpu())
        if self.device == "cuda":
            torch.cuda.synchronize()
        pipe.release_graphs()
        denoiser.train(was_training)
        if not waves:
            return torch.zeros(0, 1), torch.zeros(0), time.time() - start
        return torch.cat(waves), torch.cat(latents), time.time() - start

    def _features(self, waves: torch.Tensor) -> tuple[AudioFeatures, GaussianStats]:
        local = self.suite.features(waves)
        return gather_features(local), reduced_stats(local)

    def ensure_references(self, teacher, teacher_steps: int) -> dict[str, float] | None:
        """Compute the reference statistics once; returns the teacher's own scores (every time: the
        members of a population share one scorer, and each run's eval.jsonl gets the teacher's record)."""
        if "teacher" in self.references:
            return self.teacher_metrics
        cache = self.reference_cache
        if cache is None or _world()[1] > 1:  # under DDP the ranks compute their shares together
            return self._load_or_compute_references(teacher, teacher_steps, cache)
        with exclusive(cache):  # runs sharing it (a comparison's, side by side): the first computes it
            return self._load_or_compute_references(teacher, teacher_steps, cache)

    def _load_or_compute_references(self, teacher, teacher_steps: int, cache: Path | None):
        identity = (
            None
            if cache is None
            else reference_identity(teacher, teacher_steps, self.guidance_scale, self.set, self.vocoder)
        )
        rank, world = _world()
        if cache is not None and cache.is_file():
            changed = stale_reference_keys(cache, identity)
            if not changed:
                self.references, metrics, clips = load_references(cache)
                self.teacher_clips = clips or None
                self.fad_floor = metrics.get("fad_teacher_floor")
                self.teacher_metrics = metrics
                return metrics
            print(f"note: {cache} was made under other settings ({', '.join(changed)}); computing them again")
            if rank == 0:
                cache.unlink(missing_ok=True)
        mine = list(range(rank, len(self.set.captions), world))
        if self.set.real is not None:
            _, self.references["real"] = self._features(self.set.real[mine])
        # the teacher on its own grid, whatever spacing the students are distilled on
        waves, latents, seconds = self.generate_latents(teacher, teacher_steps, mine, grid_power=1.0)
        local = self.suite.features(waves)
        features, stats = gather_features(local), reduced_stats(local)
        self.references["teacher"] = stats
        levels = {k: gather_rows(v) for k, v in clip_levels(waves).items()}
        self.teacher_clips = {
            "latents": gather_rows(latents),
            "mels": gather_rows(log_mel(waves)),
            "embedding": features.embedding,
            "audio_joint": features.audio_joint,
            **levels,
            **{f"logits.{k}": v for k, v in features.logits.items()},
        }
        nfe = network_calls(teacher_steps, teacher.takes_guidance, self.guidance_scale)
        metrics = {
            **score(self.suite, features, self.text_joint, self.set.targets, self.references, stats),
            **silence_floor(levels["noise_floor_db"], self.set.captions),
            "steps": teacher_steps,
            "nfe": nfe,
            "seconds_per_clip": seconds / max(len(mine), 1),
        }
        if self.teacher_floor:  # the teacher against itself with other initial noise
            other, _ = self.generate(teacher, teacher_steps, mine, seed_offset=OTHER_NOISE, grid_power=1.0)
            other_features, other_stats = self._features(other)
            self.teacher_clips["embedding_other"] = other_features.embedding
            self.fad_floor = frechet_from_stats(other_stats, stats)
            metrics.update(
                fad_teacher_floor=self.fad_floor, fad_teacher_ratio=metrics["fad_teacher"] / self.fad_floor
            )
            metrics.update(self.fad_intervals(features.embedding, metrics))
        if cache is not None and rank == 0:
            save_references(cache, self.references, metrics, self.teacher_clips, identity)
        self.teacher_metrics = metrics
        return metrics

    def fad_intervals(self, embedding: torch.Tensor, metrics: dict) -> dict[str, float]:
        """Standard errors and 95 % intervals of ``fad_teacher``, its floor and their ratio, from
        half-sample replicates over the clips (:meth:`teacher_half_samples`),
        when the set has at least as many clips as the embedding has dimensions (fewer give a
        rank-deficient covariance: no FAD interval worth the name)."""
        t = self.teacher_clips or {}
        n, dim = embedding.shape
        if "embedding_other" not in t or n < dim or not self.fad_floor:
            return {}
        reference, floor = self.teacher_half_samples()
        reps = {"fad_teacher": reference.distances(embedding), "fad_teacher_floor": floor}
        reps["fad_teacher_ratio"] = reps["fad_teacher"] / reps["fad_teacher_floor"]
        out = {}
        for name, r in reps.items():
            se = float(r.std())
            out[f"{name}_se"] = se
            out[f"{name}_lo"], out[f"{name}_hi"] = normal_interval(metrics[name], se)
        return out

    def teacher_half_samples(self) -> tuple[HalfSampleReplicates, torch.Tensor]:
        """The teacher's half-sample replicates (:class:`bsa.metrics.frechet.HalfSampleReplicates`)
        and the floor's (the teacher's second draw against it), prepared once for every stage and
        member scored against the same teacher outputs: a member's FAD interval then decomposes
        only its own covariances (the teacher's side and the floor were decomposed anew for each,
        four times the work)."""
        t = self.teacher_clips
        if self._half_samples is None or self._half_samples[0] is not t["embedding"]:
            device = self.device if self.device == "cuda" else "cpu"
            reference = HalfSampleReplicates(t["embedding"].to(device), seed=self.set.seeds[0])
            self._half_samples = (t["embedding"], reference, reference.distances(t["embedding_other"]))
        return self._half_samples[1], self._half_samples[2]

    def teacher_per_clip(self) -> dict[str, list]:
        """The teacher's own per-clip scores (CLAP, attribute correctness), from its kept outputs."""
        t = self.teacher_clips
        if t is None:
            return {}
        features = AudioFeatures(
            t["embedding"],
            {k[len("logits.") :]: v for k, v in t.items() if k.startswith("logits.")},
            t["audio_joint"],
        )
        scores = per_clip_scores(features, self.text_joint, self.set.targets)
        scores |= {
            k: t[k] for k in ("level_db", "noise_floor_db") if k in t
        }  # not in caches before 2026-11-29
        return {k: [round(float(x), 6) for x in v] for k, v in scores.items()}

    def paired(
        self, waves: torch.Tensor, latents: torch.Tensor, local: AudioFeatures, mine: list[int]
    ) -> dict:
        """The paired metrics against the teacher's outputs for the same clips (this rank's
        ``mine``), gathered over ranks, with their bootstrap intervals."""
        t, idx = self.teacher_clips, torch.tensor(mine, dtype=torch.long)
        teacher_features = AudioFeatures(
            t["embedding"][idx],
            {k[len("logits.") :]: v[idx] for k, v in t.items() if k.startswith("logits.")},
            t["audio_joint"][idx],
        )
        per_clip = paired_per_clip(
            latents,
            t["latents"][idx],
            log_mel(waves),
            t["mels"][idx],
            local,
            teacher_features,
            self.text_joint[idx],
            {k: v[idx] for k, v in self.set.targets.items()} if self.set.targets else None,
        )
        return summarise_paired({k: gather_rows(v) for k, v in per_clip.items()}, seed=self.set.seeds[0])

    def evaluate(
        self, denoiser, steps: int
    ) -> tuple[dict[str, float], torch.Tensor, dict[str, list], torch.Tensor]:
        """Scores of ``denoiser`` at ``steps``, the waveforms of this rank's clips, the per-clip
        scores of the whole set (CLAP, attribute correctness: for paired comparisons of models)
        and its per-clip evaluation embedding [N, D] (for paired FAD differences)."""
        rank, world = _world()
        mine = list(range(rank, len(self.set.captions), world))
        # where a scoring's time went: on an H100 a population member's took 9.5 s, 5–6 s on an H200
        laps = Laps(self.device, prefix="seconds_")
        waves, latents, seconds = self.generate_latents(denoiser, steps, mine)
        laps("sampling")
        local = self.suite.features(waves)
        features, stats = gather_features(local), reduced_stats(local)
        laps("features")
        metrics = score(self.suite, features, self.text_joint, self.set.targets, self.references, stats)
        levels = {k: gather_rows(v) for k, v in clip_levels(waves).items()}
        metrics.update(silence_floor(levels["noise_floor_db"], self.set.captions))
        metrics.update(
            steps=steps,
            nfe=network_calls(steps, denoiser.takes_guidance, self.guidance_scale),
            seconds_per_clip=seconds / max(len(mine), 1),
        )
        laps("scores")
        if self.teacher_clips is not None:
            metrics.update(self.paired(waves, latents, local, mine))
            laps("paired")
        if self.fad_floor and "fad_teacher" in metrics:
            metrics.update(
                fad_teacher_floor=self.fad_floor, fad_teacher_ratio=metrics["fad_teacher"] / self.fad_floor
            )
            metrics.update(self.fad_intervals(features.embedding, metrics))
            laps("fad_intervals")
        idx = torch.tensor(mine, dtype=torch.long)
        targets = {k: v[idx] for k, v in self.set.targets.items()} if self.set.targets else None
        per_clip = {
            k: [round(float(x), 6) for x in gather_rows(v)]
            for k, v in per_clip_scores(local, self.text_joint[idx], targets).items()
        }
        per_clip |= {k: [round(float(x), 6) for x in v] for k, v in levels.items()}  # how loud, how quiet
        laps("per_clip_scores")
        metrics.update(laps.seconds)
        return metrics, waves, per_clip, features.embedding


class StageEvaluation(pl.Callback):
    """Runs ``StageScorer`` at the end of a stage (after ``StagePromotion``, on the promoted student)
    and every ``every_n_steps`` steps; see the module docstring for where the results go."""

    def __init__(
        self,
        scorer: StageScorer,
        *,
        teacher,
        teacher_steps: int,
        student_steps: int,
        promotion,
        run_dir: str | Path,
        record: dict,
        every_n_steps: int = 0,
        showcase: int = 4,
        protocol: dict | None = None,
        keep_embeddings: bool = True,
    ):
        self.scorer, self.teacher, self.teacher_steps = scorer, teacher, teacher_steps
        self.student_steps, self.promotion, self.run_dir = student_steps, promotion, Path(run_dir)
        self.record, self.every_n_steps, self.showcase = record, every_n_steps, showcase
        self.protocol = protocol or {}
        self.keep_embeddings = keep_embeddings  # each final record's per-clip embedding beside it
        self.results: list[dict] = []

    @property
    def log_path(self) -> Path:
        return self.run_dir / "eval.jsonl"

    def _has_teacher_record(self) -> bool:
        return any(r.get("mode") == "teacher" for r in read_jsonl(self.log_path))

    def _write(
        self, trainer: pl.Trainer, metrics: dict, record: dict, denoiser, steps: int, folder: str
    ) -> None:
        """Rank 0: showcase clips, the W&B table, the eval.jsonl line."""
        from bsa.metrics.media import save_clip

        k = min(self.showcase, len(self.scorer.set.captions))
        samples = []
        if k:
            waves, _ = self.scorer.generate(denoiser, steps, list(range(k)))
            for i, wave in enumerate(waves):
                audio, png = save_clip(self.run_dir / "samples" / folder, f"{i:02d}", wave)
                samples.append(
                    {
                        "caption": self.scorer.set.captions[i],
                        "audio": str(audio.relative_to(self.run_dir)),
                        "spectrogram": str(png.relative_to(self.run_dir)),
                    }
                )
            self._wandb_table(trainer, waves, samples)
        line = {
            **self.record,
            **record,
            "metrics": metrics,
            "protocol": self.protocol,
            "samples": samples,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        append_jsonl(self.log_path, line)
        self.results.append(line)

    def _wandb_table(self, trainer: pl.Trainer, waves: torch.Tensor, samples: list[dict]) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                from bsa.metrics.media import spectrogram_image

                rows = [
                    [
                        s["caption"],
                        wandb.Audio(w.numpy(), sample_rate=16000),
                        wandb.Image(spectrogram_image(w)),
                    ]
                    for s, w in zip(samples, waves, strict=True)
                ]
                logger.log_table(
                    "eval/samples",
                    columns=["caption", "audio", "spectrogram"],
                    data=rows,
                    step=trainer.global_step,
                )

    def _embedding_file(self, name: str, embedding: torch.Tensor | None) -> dict:
        """{"embedding_file": …} for a record whose embedding was saved (rank 0 writes records)."""
        if embedding is None or not self.keep_embeddings:
            return {}
        return {"embedding_file": save_embedding(self.run_dir, name, embedding)}

    def _evaluate(self, trainer: pl.Trainer, denoiser, final: bool) -> None:
        step = trainer.global_step
        teacher_metrics = self.scorer.ensure_references(self.teacher, self.teacher_steps)
        if teacher_metrics is not None and trainer.is_global_zero and not self._has_teacher_record():
            self._write(
                trainer,
                teacher_metrics,
                {
                    "stage": -1,
                    "mode": "teacher",
                    "steps": self.teacher_steps,
                    "label": f"teacher @ {self.teacher_steps} (CFG)",
                    "global_step": 0,
                    "final": True,
                    "per_clip": self.scorer.teacher_per_clip(),
                    **self._embedding_file("teacher", (self.scorer.teacher_clips or {}).get("embedding")),
                },
                self.teacher,
                self.teacher_steps,
                "teacher",
            )
        metrics, _, per_clip, embedding = self.scorer.evaluate(denoiser, self.student_steps)
        for logger in trainer.loggers:  # rank-zero-only loggers: the others drop it
            logger.log_metrics({f"eval/{k}": float(v) for k, v in metrics.items()}, step=step)
        if trainer.is_global_zero:
            folder = self.record["stage_name"] + ("" if final else f"-step{step}")
            self._write(
                trainer,
                metrics,
                {
                    "global_step": step,
                    "final": final,
                    "per_clip": per_clip,
                    **(self._embedding_file(folder, embedding) if final else {}),
                },
                denoiser,
                self.student_steps,
                folder,
            )
        trainer.strategy.barrier("stage-evaluation")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        n = self.every_n_steps
        if n and trainer.global_step % n == 0 and trainer.global_step < self.promotion.total_steps:
            self._evaluate(trainer, pl_module.export_teacher(), final=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.promotion.promoted is not None:
            self._evaluate(trainer, self.promotion.promoted, final=True)
