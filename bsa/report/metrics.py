"""The one table of reported metrics: key in the records, title, which direction is better."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # as in eval.jsonl's "metrics" and metrics.json
    title: str  # for tables and plots
    better: str  # "lower" | "higher" | "" (not a quality: cost or time)
    short: str  # a column head


METRICS: tuple[Metric, ...] = (
    Metric("fad_real", "FAD vs real test clips", "lower", "FAD vs real"),
    Metric("fad_teacher", "FAD vs the teacher's outputs", "lower", "FAD vs teacher"),
    Metric(
        "fad_teacher_ratio", "FAD vs the teacher over its floor (teacher vs itself)", "lower", "FAD / floor"
    ),
    Metric("paired_clap_difference", "Δ CLAP to the teacher, clip by clip", "higher", "Δ CLAP"),
    Metric("clap", "CLAP score", "higher", "CLAP"),
    Metric("is", "IS", "higher", "IS"),
    Metric("acc_mean", "attribute accuracy", "higher", "attribute acc"),
    Metric("acc_source", "source accuracy", "higher", "acc source"),
    Metric("acc_pitch", "pitch accuracy", "higher", "acc pitch"),
    Metric("acc_rhythm", "rhythm accuracy", "higher", "acc rhythm"),
    Metric(
        "silence_floor_dbfs", "noise floor of clips captioned 'in silence' (dBFS)", "lower", "silence floor"
    ),
    Metric("nfe", "network calls per clip", "", "NFE"),
    Metric("seconds_per_clip", "seconds per clip", "", "s/clip"),
)
BY_KEY = {m.key: m for m in METRICS}

# the quality metrics compared across weightings (results tables, dashboard plots), in their order
QUALITY = ("fad_real", "fad_teacher", "fad_teacher_ratio", "paired_clap_difference", "clap", "acc_mean", "is")
# what is averaged over seeds in a comparison
AGGREGATED = (*QUALITY, "seconds_per_clip")
