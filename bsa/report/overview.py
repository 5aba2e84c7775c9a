"""The README's "Results at a glance": one row per question the project answers, every figure read
from the committed record that holds it (with the command, device and date inside), and the page
of ``docs/results/`` that tells how it was measured."""

from __future__ import annotations

from bsa.report.fidelity import interval_cell

# the records the table reads, relative to the repository root
RECORDS = {
    "teacher": "results/teacher-vocoder-2026-11-28/metrics.json",
    "fidelity": "results/fidelity/summary.json",
    "weighting": "results/weighting-study/summary.json",
    "speed": "results/speed/summary.json",
}
FIDELITY_STEPS = ("25", "4", "1")
# the study's default against the reference at the step count that decided it (docs/results/weighting-study.md)
WEIGHTING_DEFAULT, WEIGHTING_STEPS = "bsa(floor=0.1,gamma=20)", "4"


def _link(path: str) -> str:
    return f"[`{path}`]({path})"


def _teacher_row(record: dict) -> str:
    protocol, model = record["protocol"], record["results"]["model @ 200 steps"]
    answer = (
        f"FAD vs real {model['fad_real']:.1f}, CLAP {model['clap']:.3f}, mean attribute accuracy "
        f"{model['acc_mean']:.3f} ({protocol['num_clips']} captions)"
    )
    return (
        f"| the teacher, 200 DDIM steps + CFG | {answer} | {protocol['device']}, {protocol['date']} "
        f"| {_link(RECORDS['teacher'])}, [teacher](docs/results/teacher.md) |"
    )


def _fidelity_row(summary: dict, steps: str) -> str:
    row = summary["steps"][steps]
    answer = (
        f"Δ CLAP {interval_cell(row['clap_delta'])}, Δ attribute accuracy "
        f"{interval_cell(row['attribute_acc_delta'])}, FAD vs teacher "
        f"{interval_cell(row['fad_ratio'], '{:.2f}')}× its floor (seeds {','.join(map(str, row['seeds']))})"
    )
    return (
        f"| students at {steps} step{'s' * (steps != '1')} against their teacher | {answer} "
        f"| {summary['device']}, {summary['date']} | {_link(RECORDS['fidelity'])}, "
        "[fidelity](docs/results/fidelity.md) |"
    )


def _weighting_row(summary: dict) -> str:
    point = summary["steps"][WEIGHTING_STEPS][WEIGHTING_DEFAULT]
    diff = point["diff_to_bsa"]
    answer = (
        f"Δ CLAP {interval_cell(diff['clap'])}, Δ FAD vs teacher {interval_cell(diff['fad_vs_teacher'], '{:+.2f}')} "
        f"(seeds {','.join(map(str, point['diff_seeds']))}); the package default by the study's rule"
    )
    family = summary["steps"][WEIGHTING_STEPS][summary["reference"]]["family"]
    reference = f"`{summary['reference']}` (floor {family['floor']:g}, γ {family['gamma']:g})"
    return (
        f"| the weighting `{WEIGHTING_DEFAULT}` against {reference} at {WEIGHTING_STEPS} steps "
        f"| {answer} | {summary['device']}, {summary['date']} | {_link(RECORDS['weighting'])}, "
        "[weighting study](docs/results/weighting-study.md) |"
    )


def _speed_row(summary: dict) -> str:
    answer = (
        f"student 25 steps at batch 1 {summary['student25_185m_b1_s_per_clip']:.3f} s/clip, "
        f"{summary['speedup_185m_b1']:.1f}× the teacher ({summary['speedup_185m_b64']:.1f}× at batch 64); "
        f"distillation {summary['train_185m_b64_samples_per_s']:.0f} samples/s at batch 64 "
        f"({100 * summary['train_185m_b64_mfu']:.1f} % of bf16 peak); 2 GPUs {summary['ddp2_185m_scaling']:.2f}× one"
    )
    return (
        f"| speed of the 185 M (AudioLDM-s-sized) UNet | {answer} | {summary['device']}, {summary['date']} "
        f"| {_link(RECORDS['speed'])}, [speed](docs/results/speed.md) |"
    )


def overview_table(records: dict[str, dict]) -> str:
    """The table from ``records`` (RECORDS' keys → the files' parsed JSON)."""
    rows = [
        "| question | answer | machine, date | record (command inside), how |",
        "|---|---|---|---|",
        _teacher_row(records["teacher"]),
        *(_fidelity_row(records["fidelity"], steps) for steps in FIDELITY_STEPS),
        _weighting_row(records["weighting"]),
        _speed_row(records["speed"]),
    ]
    return "\n".join(rows)
