"""Offline preprocessing: audio → mono 16 kHz → log-mel → raw VAE latents, captions → text
embeddings, written as shards + a manifest (SPEC §1). Resumable and shardable across workers.

The models arrive as two callables, so this module does not depend on ``bsa.models``:
``encode_mel(mel [B, 1, T, F]) → latents [B, C, T', F']`` and ``embed_text(captions) → [B, D]``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bsa.audio import AudioError, MelParams, load_clip, log_mel, num_samples_for
from bsa.data.audiocaps import CaptionRow, RowProblem, read_caption_csv, resolve_audio
from bsa.data.manifest import CacheIdentity, CacheManifest, CacheMismatchError, SplitEntry
from bsa.durable import replace_durably, temporary_path

IDENTITY_FILE = "identity.json"
REPORT_FILE = "report.csv"


@dataclass(frozen=True)
class SplitSource:
    csv: Path
    audio_dir: Path


@dataclass
class CacheBuildResult:
    manifest: CacheManifest | None  # None while other workers' shards are still missing
    encoded: int
    problems: list[RowProblem]
    report: Path | None

    def summary(self) -> str:
        skipped = Counter(
            p.reason.split(" (")[0].split(":")[0].strip() for p in self.problems if p.action == "skipped"
        )
        fixed = Counter(p.action for p in self.problems if p.action != "skipped")
        parts = [f"{self.encoded} clips encoded", f"{sum(skipped.values())} skipped"]
        if skipped:
            parts[-1] += " (" + ", ".join(f"{n} {r}" for r, n in skipped.most_common()) + ")"
        parts += [f"{n} {a}" for a, n in fixed.most_common()]
        where = f"; report: {self.report}" if self.report else "; waiting for other workers' shards"
        return "cache: " + ", ".join(parts) + where


def _atomic_save(obj: object, path: Path) -> None:
    tmp = temporary_path(path)
    torch.save(obj, tmp)
    replace_durably(tmp, path)


def _check_identity(cache_dir: Path, identity: CacheIdentity) -> None:
    path = cache_dir / IDENTITY_FILE
    if path.is_file():
        existing = CacheIdentity(**json.loads(path.read_text()))
        diffs = existing.differences(identity)
        if diffs:
            raise CacheMismatchError(
                f"{cache_dir} holds a (partial) cache built with other settings:\n  "
                + "\n  ".join(diffs)
                + f"\ndelete {cache_dir} or choose another data.cache_dir"
            )
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        tmp.write_text(json.dumps(asdict(identity), indent=2) + "\n")
        replace_durably(tmp, path)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.pt"


def _encode_shard(
    rows: list[CaptionRow],
    csv_path: Path,
    audio_dir: Path,
    identity: CacheIdentity,
    mel: MelParams,
    encode_mel: Callable[[torch.Tensor], torch.Tensor],
    embed_text: Callable[[list[str]], torch.Tensor],
    batch_size: int,
    min_seconds: float,
    bar,
) -> tuple[dict, list[RowProblem]]:
    num_samples = num_samples_for(identity.clip_seconds, mel.sample_rate)
    good: list[tuple[CaptionRow, torch.Tensor]] = []
    problems: list[RowProblem] = []
    for row in rows:
        path = resolve_audio(audio_dir, row)
        try:
            clip = load_clip(path, mel.sample_rate, num_samples, min_seconds=min_seconds)
        except AudioError as e:
            problems.append(
                RowProblem(
                    str(csv_path), row.line, row.audiocap_id, str(path), "skipped", str(e).split(": ", 1)[1]
                )
            )
        else:
            for note in clip.notes:
                problems.append(
                    RowProblem(str(csv_path), row.line, row.audiocap_id, str(path), note.split()[0], note)
                )
            good.append((row, clip.wave))
        bar.update(1)
    latents, shape = [], tuple(identity.latent_shape)
    with torch.inference_mode():
        for i in range(0, len(good), batch_size):
            waves = torch.stack([w for _, w in good[i : i + batch_size]])
            z = encode_mel(log_mel(waves, mel).unsqueeze(1))
            if tuple(z.shape[1:]) != shape:
                raise CacheMismatchError(
                    f"the VAE gives latents of shape {tuple(z.shape[1:])}, the cache identity says {shape}"
                )
            latents.append(z.to(getattr(torch, identity.storage_dtype)).cpu())
        captions = [r.caption for r, _ in good]
        text = (
            embed_text(captions).float().cpu() if captions else torch.zeros(0, identity.text_encoder["dim"])
        )
    shard = {
        "ids": [r.audiocap_id for r, _ in good],
        "captions": captions,
        "meta": [dict(r.extra) for r, _ in good],
        "latents": torch.cat(latents)
        if latents
        else torch.zeros(0, *shape, dtype=getattr(torch, identity.storage_dtype)),
        "text_emb": text,
    }
    return shard, problems


def build_cache(
    splits: dict[str, SplitSource],
    cache_dir: str | Path,
    identity: CacheIdentity,
    encode_mel: Callable[[torch.Tensor], torch.Tensor],
    embed_text: Callable[[list[str]], torch.Tensor],
    *,
    shard_size: int = 1024,
    batch_size: int = 32,
    worker_index: int = 0,
    worker_count: int = 1,
    min_seconds: float = 0.5,
    dataset_info: dict | None = None,
    progress: bool = True,
) -> CacheBuildResult:
    """Encode every split into ``cache_dir/{split}/shard_*.pt`` and write the manifest.

    Shard k of a split holds CSV rows [k·shard_size, (k+1)·shard_size); this worker encodes shards
    with k ≡ worker_index (mod worker_count). A finished shard is never recomputed, so an
    interrupted run restarted with the same arguments resumes. Bad rows are skipped or repaired,
    never silently: each is a row of ``report.csv``. The manifest is written once all shards of
    all splits exist (by whichever worker finishes last).
    """
    from tqdm.auto import tqdm

    if not 0 <= worker_index < worker_count:
        raise ValueError(f"worker_index {worker_index} not in [0, {worker_count})")
    cache_dir = Path(cache_dir)
    _check_identity(cache_dir, identity)
    mel = MelParams(**identity.mel)
    parsed = {name: read_caption_csv(src.csv) for name, src in splits.items()}
    todo = []
    for name, (rows, _) in parsed.items():
        (cache_dir / name).mkdir(parents=True, exist_ok=True)
        for k in range(0, max(1, -(-len(rows) // shard_size))):
            if k % worker_count == worker_index and not (cache_dir / name / shard_name(k)).is_file():
                todo.append((name, k, rows[k * shard_size : (k + 1) * shard_size]))
    encoded = 0
    with tqdm(total=sum(len(r) for _, _, r in todo), desc="encoding clips", disable=not progress) as bar:
        for name, k, rows in todo:
            shard, problems = _encode_shard(
                rows,
                splits[name].csv,
                splits[name].audio_dir,
                identity,
                mel,
                encode_mel,
                embed_text,
                batch_size,
                min_seconds,
                bar,
            )
            shard_path = cache_dir / name / shard_name(k)
            _atomic_save({"problems": [asdict(p) for p in problems]}, shard_path.with_suffix(".report.pt"))
            _atomic_save(shard, shard_path)  # the shard file last: its presence means "done"
            encoded += len(shard["ids"])

    # finalise when every shard of every split exists
    entries, problems, complete = {}, [], True
    for name, (rows, csv_problems) in parsed.items():
        problems.extend(csv_problems)
        shard_files = [shard_name(k) for k in range(max(1, -(-len(rows) // shard_size)))]
        if not all((cache_dir / name / s).is_file() for s in shard_files):
            complete = False
            continue
        count = 0
        for s in shard_files:
            report = torch.load(cache_dir / name / Path(s).with_suffix(".report.pt"), weights_only=True)
            problems.extend(RowProblem(**p) for p in report["problems"])
            count += len(torch.load(cache_dir / name / s, weights_only=True)["ids"])
        skipped = sum(1 for p in problems if p.csv == str(splits[name].csv) and p.action == "skipped")
        entries[name] = SplitEntry(count=count, shards=shard_files, skipped=skipped)
    if not complete:
        return CacheBuildResult(None, encoded, problems, None)
    report_path = cache_dir / REPORT_FILE
    tmp = temporary_path(report_path)
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(RowProblem.__dataclass_fields__))
        w.writeheader()
        for p in sorted(problems, key=lambda p: (p.csv, p.line)):
            w.writerow(asdict(p))
    replace_durably(tmp, report_path)
    with torch.inference_mode():
        _atomic_save(embed_text([""]).float().cpu()[0], cache_dir / "null_text_embedding.pt")
    manifest = CacheManifest(identity=identity, splits=entries, dataset=dataset_info or {})
    manifest.write(cache_dir)
    return CacheBuildResult(manifest, encoded, problems, report_path)
