"""Reading captioned audio in AudioCaps' layout: ``{split}.csv`` with ``audiocap_id,youtube_id,
start_time,caption`` (+ optional extra columns) and one audio file per row.

Malformed rows are not fatal: each becomes a :class:`RowProblem` with the reason, for the report.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class CaptionRow:
    line: int  # 1-based line in the CSV (header = line 1)
    audiocap_id: str
    youtube_id: str
    start_time: float
    caption: str
    extra: dict[str, str] = field(default_factory=dict)  # e.g. the embedded set's ground-truth attributes


@dataclass(frozen=True)
class RowProblem:
    csv: str
    line: int
    audiocap_id: str
    file: str
    action: str  # "skipped" or what was done: "resampled", "padded", "cut", "down-mixed"
    reason: str


class DatasetError(ValueError):
    """A data set that cannot be read at all (missing CSV, missing required columns)."""


def audio_candidates(audio_dir: Path, row: CaptionRow) -> list[Path]:
    """File names the usual AudioCaps download tools leave: ``{youtube_id}.wav``,
    ``{youtube_id}_{start}.wav``, ``Y{youtube_id}.wav`` (AudioSet), ``{audiocap_id}.wav``; any of
    :data:`AUDIO_EXTENSIONS`."""
    start = f"{row.start_time:g}"
    stems = [
        row.youtube_id,
        f"{row.youtube_id}_{start}",
        f"{row.youtube_id}_{int(row.start_time)}",
        f"Y{row.youtube_id}",
        row.audiocap_id,
    ]
    return [audio_dir / f"{stem}{ext}" for stem in stems for ext in AUDIO_EXTENSIONS]


def resolve_audio(audio_dir: Path, row: CaptionRow) -> Path:
    """The first existing candidate, else the canonical ``{youtube_id}.wav`` (reported as missing)."""
    for p in audio_candidates(audio_dir, row):
        if p.is_file():
            return p
    return audio_dir / f"{row.youtube_id}.wav"


def read_caption_csv(path: str | Path) -> tuple[list[CaptionRow], list[RowProblem]]:
    """Parse an AudioCaps-style CSV. Returns the good rows and the problems of the others (empty
    caption, bad start_time, missing fields, duplicate audiocap_id)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: caption CSV not found")
    rows: list[CaptionRow] = []
    problems: list[RowProblem] = []
    seen: set[str] = set()
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a BOM (Excel's "CSV UTF-8") is accepted
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}: line {line} is not UTF-8 (byte {raw[e.start]:#04x} at offset {e.start}); "
            "save the file as UTF-8"
        ) from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing required column(s) {missing}; header is {reader.fieldnames}")
        for record in reader:
            line = reader.line_num
            cap_id = (record.get("audiocap_id") or "").strip()

            def problem(reason: str) -> None:
                problems.append(RowProblem(str(path), line, cap_id, "", "skipped", reason))  # noqa: B023

            if None in record or any(record.get(c) is None for c in REQUIRED_COLUMNS):
                problem("malformed row: wrong number of fields")
                continue
            caption = " ".join(record["caption"].split())
            youtube_id = record["youtube_id"].strip()
            if not cap_id or not youtube_id:
                problem("malformed row: empty audiocap_id or youtube_id")
                continue
            if not caption:
                problem("empty caption")
                continue
            try:
                start = float(record["start_time"])
            except ValueError:
                problem(f"malformed row: start_time {record['start_time']!r} is not a number")
                continue
            if not math.isfinite(start):
                raise DatasetError(
                    f"{path}: line {line}, audiocap_id {cap_id}: start_time is {record['start_time']!r}, "
                    "not a finite number of seconds"
                )
            if cap_id in seen:
                problem(f"duplicate audiocap_id {cap_id}")
                continue
            seen.add(cap_id)
            extra = {k: v for k, v in record.items() if k not in REQUIRED_COLUMNS}
            rows.append(CaptionRow(line, cap_id, youtube_id, start, caption, extra))
    return rows, problems
