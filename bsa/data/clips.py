"""Whole splits of log-mels in memory, for training the VAE and the evaluator (small data sets)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bsa.audio import AudioError, MelParams, load_clip, log_mel, num_samples_for
from bsa.data.audiocaps import RowProblem, read_caption_csv, resolve_audio
from bsa.data.encode import SplitSource


@dataclass
class MelSplit:
    mels: torch.Tensor  # [N, T, n_mels]
    captions: list[str]
    ids: list[str]
    meta: list[dict]
    problems: list[RowProblem]


@dataclass
class WaveSplit:
    waves: torch.Tensor  # [N, L] float32 at the mel front end's rate
    rows: list  # the CaptionRows read
    problems: list[RowProblem]


def load_wave_split(
    source: SplitSource,
    clip_seconds: float,
    sample_rate: int = MelParams().sample_rate,
    limit: int | None = None,
    progress: bool = True,
    workers: int = 8,
) -> WaveSplit:
    """Every readable clip of a split as waveforms; unreadable rows are returned as problems."""
    from tqdm.auto import tqdm

    rows, problems = read_caption_csv(source.csv)
    rows = rows[:limit] if limit else rows
    from concurrent.futures import ThreadPoolExecutor

    n = num_samples_for(clip_seconds, sample_rate)

    def read(row):
        path = resolve_audio(source.audio_dir, row)
        try:
            return row, load_clip(path, sample_rate, n).wave, None
        except AudioError as e:
            return (
                row,
                None,
                RowProblem(str(source.csv), row.line, row.audiocap_id, str(path), "skipped", str(e)),
            )

    waves, kept = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:  # decoding releases the GIL; order is kept
        for row, wave, problem in tqdm(
            pool.map(read, rows), total=len(rows), desc=f"reading {source.csv.name}", disable=not progress
        ):
            if problem is None:
                waves.append(wave)
                kept.append(row)
            else:
                problems.append(problem)
    return WaveSplit(torch.stack(waves) if waves else torch.zeros(0, n), kept, problems)


def load_mel_split(
    source: SplitSource,
    clip_seconds: float,
    mel: MelParams = MelParams(),
    limit: int | None = None,
    progress: bool = True,
) -> MelSplit:
    """Every readable clip of a split as log-mels; unreadable rows are returned as problems."""
    split = load_wave_split(source, clip_seconds, mel.sample_rate, limit, progress)
    waves, kept = split.waves, split.rows
    mels = (
        torch.cat([log_mel(waves[i : i + 256], mel) for i in range(0, len(waves), 256)])
        if len(waves)
        else torch.zeros(0, mel.frames(waves.shape[-1]), mel.n_mels)
    )
    return MelSplit(
        mels,
        [r.caption for r in kept],
        [r.audiocap_id for r in kept],
        [r.extra for r in kept],
        split.problems,
    )
