"""Reading the records a run leaves: ``eval.jsonl`` (one line per evaluation), the CSV logs and
the resolved ``config.yaml``. A comparison is a folder of runs; each record says its own run,
weighting, seed, stage and mode."""

from __future__ import annotations

import csv
from pathlib import Path

from bsa.durable import read_jsonl, replace_durably

EVAL_LOG = "eval.jsonl"


def final_records(path: str | Path) -> list[dict]:
    """The final evaluation record of the teacher and of each stage in ``eval.jsonl`` (the latest
    line of each wins: a resumed run may have scored a stage again), in stage order."""
    latest: dict[int, dict] = {}
    for rec in read_jsonl(path):
        if rec.get("final", True):
            latest[rec["stage"]] = rec
    return [r for _, r in sorted(latest.items())]


# the protocol keys that say where a run was measured, not what was measured
WHERE_MEASURED = ("seeds", "device", "world_size")
# the waveform path of records made before the protocol named it: Griffin-Lim half a hop early
# until commit ee54a8a (2026-11-28 18:27:37 UTC), aligned with the mel frames from then on
WAVEFORM_BEFORE = "GriffinLimVocoder, waveform format 1"
WAVEFORM_ALIGNED = "GriffinLimVocoder, waveform format 2"
ALIGNED_SINCE = "2026-11-28 18:27:37"


def measurement(record: dict) -> dict:
    """What a record's scores measured: its protocol (evaluator, CLAP model, captions, guidance,
    the waveform path…) without where it was measured (:data:`WHERE_MEASURED`). A record from
    before the protocol named its waveform path has the one of its date."""
    protocol = dict(record.get("protocol") or {})
    if "waveform" not in protocol:
        aligned = str(record.get("date", "")) >= ALIGNED_SINCE
        protocol["waveform"] = WAVEFORM_ALIGNED if aligned else WAVEFORM_BEFORE
    return {k: v for k, v in protocol.items() if k not in WHERE_MEASURED}


def check_one_measurement(records: list[dict]) -> None:
    """Refuses to pool records whose scores measured different things — e.g. runs scored before
    and after a change of the waveform path, whose teachers' own scores differ: a ValueError
    naming two runs and the protocol key in which they differ."""
    first = next((r for r in records if r.get("protocol") is not None), None)
    if first is None:
        return
    expected = measurement(first)
    for r in records:
        if r.get("protocol") is None:
            continue
        got = measurement(r)
        for key in sorted(set(expected) | set(got)):
            if expected.get(key) != got.get(key):
                raise ValueError(
                    f"runs {first.get('run')!r} and {r.get('run')!r} were scored under different protocols "
                    f"({key}: {expected.get(key)!r} against {got.get(key)!r}); summarise them apart"
                )


def has_final_record(run_dir: str | Path, stage: int, repair: bool = True) -> bool:
    """Whether the run's ``eval.jsonl`` holds the final evaluation of ``stage``."""
    return any(
        r.get("stage") == stage and r.get("final", True) for r in read_jsonl(Path(run_dir) / EVAL_LOG, repair)
    )


def record_embedding(run_dir: str | Path, record: dict):
    """The per-clip evaluation embedding [N, D] (float32) a final record kept beside it
    (``eval.keep_embeddings``: ``<run_dir>/<record["embedding_file"]>``), or None."""
    name = record.get("embedding_file")
    path = Path(run_dir) / name if name else None
    if path is None or not path.is_file():
        return None
    from safetensors.torch import load_file

    return load_file(str(path))["embedding"].float()


def row_of(record: dict) -> dict:
    """A record as a flat row: label, stage, steps and the metrics."""
    return {"row": record["label"], "stage": record["stage"], **record["metrics"]}


def read_eval_log(path: str | Path) -> list[dict]:
    """:func:`final_records` as flat rows."""
    return [row_of(r) for r in final_records(path)]


def comparison_records(out: str | Path) -> list[dict]:
    """Every final record of the runs under the comparison folder ``out``."""
    return [r for log in sorted(Path(out).glob(f"*/{EVAL_LOG}")) for r in final_records(log)]


def comparison_rows(out: str | Path) -> list[dict]:
    """The final records of a comparison as rows with their run, weighting, mode and seed — all
    read from the records themselves."""
    return [
        {"run": r["run"], "weighting": r["weighting"], "mode": r["mode"], "seed": r["seed"], **row_of(r)}
        for r in comparison_records(out)
    ]


PROFILES = "profiles.jsonl"


def comparison_profiles(out: str | Path) -> list[dict]:
    """The latest error profile of each stage of each run under ``out`` (``profiles.jsonl``, written
    at the end of every stage: a resumed stage may have written it again)."""
    latest: dict[tuple[str, int], dict] = {}
    for log in sorted(Path(out).glob(f"*/{PROFILES}")):
        for rec in read_jsonl(log):
            latest[(rec["run"], rec["stage"])] = without_void_gradients(rec)
    return [latest[k] for k in sorted(latest)]


def without_void_gradients(profile: dict) -> dict:
    """A profile whose gradient norms are all zero measured none: a population's members of later
    stages had no trainable parameter before 2026-11-29 (``Population.member``) and recorded 0.0 at
    every step, shares of 0. Such rows lose ``grad_norm``/``grad_share`` (reported as missing, not
    as zero); any other profile is returned as it is."""
    rows = profile.get("profile") or []
    if not rows or not all(r.get("grad_norm") == 0.0 for r in rows):
        return profile
    void = ("grad_norm", "grad_share")
    return {**profile, "profile": [{k: v for k, v in r.items() if k not in void} for r in rows]}


def loss_curve(run_dir: str | Path) -> list[tuple[float, float, float]]:
    """train/loss against the optimizer step, the stages one after another."""
    points, offset = [], 0
    for log in sorted(Path(run_dir).glob("logs/stage*/metrics.csv")):
        last = 0
        with open(log) as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    step = int(row["step"])
                    points.append((offset + step + 1, float(row["train/loss"]), 0.0))
                    last = max(last, step + 1)
        offset += last
    return points


def run_config(run_dir: str | Path):
    """The resolved config a run was made with (its ``config.yaml``)."""
    from bsa.config import load_config

    return load_config([Path(run_dir) / "config.yaml"], [])


def write_summary(out: str, summary: dict, format_summary, pages: dict | None = None, **provenance) -> str:
    """A summary command's output: ``summary`` with the date and ``provenance`` (its command, its
    inputs) to ``<out>/summary.json``, its table (``format_summary``) to ``<out>/summary.md``, and
    ``pages`` (file name → function of the summary, e.g. an HTML page) beside them; returns the
    table. Each file is replaced whole (a kill leaves the old one or the new one)."""
    import json
    import time

    summary.update(date=time.strftime("%Y-%m-%d"), **provenance)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    text = format_summary(summary)
    files = {"summary.json": json.dumps(summary, indent=1) + "\n", "summary.md": text}
    files |= {name: page(summary) for name, page in (pages or {}).items()}
    for name, content in files.items():
        tmp = folder / f"{name}.tmp"
        tmp.write_text(content)
        replace_durably(tmp, folder / name)
    return text
