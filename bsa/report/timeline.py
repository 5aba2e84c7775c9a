"""Where a comparison's time went, read from its runs' records and, for what no record holds, its
logs (``bsa compare``'s console and each run's): the parts the block tables of docs/results/weighting-study.md show,
generated here rather than copied from the logs by hand."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

_EVENT = re.compile(r"^\[compare\] (\d\d:\d\d:\d\d) (?:start (\S+),|(\S+): (?:done|FAILED))", re.M)


def run_spans(compare_log: str) -> dict[str, float]:
    """Seconds from each run's start to its end by the ``[compare] HH:MM:SS`` lines: a run started
    again (a comparison resumed) counts from its last start; a run past midnight wraps."""
    starts: dict[str, datetime] = {}
    spans: dict[str, float] = {}
    for clock, started, ended in _EVENT.findall(compare_log):
        t = datetime.strptime(clock, "%H:%M:%S")
        if started:
            starts[started] = t
        elif ended in starts:
            spans[ended] = (t - starts[ended]).total_seconds() % 86400
    return spans


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _spread(values: list[float]) -> str:
    return f"{len(values)} × {min(values):.1f}–{max(values):.1f} s"


_MEMBER_END = re.compile(r"member (\S+): exported( and scored)? in ([\d.]+) s(?: \(([^)]*)\))?")


def member_stage_ends(log: str) -> dict[bool, list[tuple[str, float, dict[str, float]]]]:
    """The members' stage ends of a population's console, unscored (False) and scored (True): per
    member its name, seconds and, where the line has them, its callbacks' seconds
    (``member bsa-seed5: exported and scored in 9.0 s (StagePromotion 0.4, ErrorProfile 1.2, …)``)."""
    ends: dict[bool, list] = {False: [], True: []}
    for name, scored, seconds, parts in _MEMBER_END.findall(log):
        split = {k: float(v) for k, v in (p.rsplit(" ", 1) for p in parts.split(", ") if p)}
        ends[bool(scored)].append((name, float(seconds), split))
    return ends


_CHECKPOINTS = re.compile(
    r"^stage \d+: .* samples/s in all \((\d+) checkpoints? \(([\d.]+) s of the training's\)\)", re.M
)
_PROFILES = re.compile(r"^\s*error profiles of (\d+) members? in ([\d.]+) s", re.M)


def _summed(parts) -> dict[str, float]:
    """Seconds per part, summed over dicts of them (first appearance first)."""
    totals: dict[str, float] = {}
    for split in parts:
        for k, v in split.items():
            totals[k] = totals.get(k, 0.0) + v
    return totals


def _listed(prefix: str, totals: dict[str, float]) -> str:
    """``; <prefix>StagePromotion 5 s, ErrorProfile 40 s`` (nothing without totals)."""
    return f"; {prefix}" + ", ".join(f"{k} {v:.0f} s" for k, v in totals.items()) if totals else ""


def _totals(ends: list[tuple[str, float, dict[str, float]]]) -> str:
    """``; StagePromotion 5 s, ErrorProfile 40 s``: the callbacks' seconds summed over members."""
    return _listed("", _summed(split for _, _, split in ends))


def scoring_parts(run_dirs: list[Path]) -> dict[str, float]:
    """The ``seconds_*`` parts of the runs' own scorings (their ``eval.jsonl``, the teacher's
    record left out: a population's members share its one reference), summed."""
    records = [
        json.loads(line)
        for run_dir in run_dirs
        if (run_dir / "eval.jsonl").is_file()
        for line in (run_dir / "eval.jsonl").read_text().splitlines()
    ]
    return _summed(
        {
            k[len("seconds_") :]: v
            for k, v in r.get("metrics", {}).items()
            if k.startswith("seconds_") and k != "seconds_per_clip"
        }
        for r in records
        if r.get("mode") != "teacher"
    )


def _stages(run_dir: Path) -> list[dict]:
    """A run's stages as its ``summary.json`` records them (``train_seconds``, ``samples_per_s``)."""
    return json.loads((run_dir / "summary.json").read_text())["stages"]


def block_parts(folder: str | Path) -> list[tuple[str, str]]:
    """(part, time) of a comparison folder brought home (``compare.log``, ``logs/``, the runs'
    ``summary.json``, ``results.md``): each guided stage and each population's stages from the runs'
    records (a population's stages from its first member's: one training), and from the consoles
    what no record holds — a population's set-up, its members' stage ends and scorings, each run's
    start to end — and the comparison's wall clock."""
    folder = Path(folder)
    spans = run_spans((folder / "compare.log").read_text())
    rows = []
    for log in sorted((folder / "logs").glob("guided-*.log")):
        (guided,) = _stages(folder / log.stem)
        rows.append(
            (
                f"{log.stem}: {guided['train_seconds']:.1f} s of training ({guided['samples_per_s']:.0f} "
                "samples/s), the teacher's reference and the scores",
                _minutes(spans[log.stem]),
            )
        )
    for log in sorted((folder / "logs").glob("population-*.log")):
        text = log.read_text().replace("\r", "\n")
        setup = re.search(r"^set-up\s+([\d.]+) s \((\d+) members(?:: ([^)]*))?\)", text, re.M)
        split = f": {setup[3]}" if setup[3] else ""
        rows.append((f"{log.stem}: set-up ({setup[2]} members{split})", f"{setup[1]} s"))
        first = re.search(r"^runs .* members in \S+: ([^,\s]+)", text, re.M)[1]
        for stage in _stages(folder / first):
            rows.append(
                (
                    f"stage {stage['stage']} (to {stage['steps']} steps): {setup[2]} students' training",
                    f"{stage['train_seconds']:.1f} s",
                )
            )
        saved = _CHECKPOINTS.findall(text)
        if saved:  # what the population's checkpoints cost its training (the caller's side of a save)
            rows.append(
                (
                    f"checkpoints ({sum(int(n) for n, _ in saved)} saves; the training's waits)",
                    f"{sum(float(x) for _, x in saved):.1f} s",
                )
            )
        profiled = [float(seconds) for _, seconds in _PROFILES.findall(text)]
        if profiled:  # the members' error profiles, measured together at each stage end
            rows.append(
                (
                    f"members' error profiles, one pass a stage end ({_spread(profiled)})",
                    f"{sum(profiled):.0f} s",
                )
            )
        ends = member_stage_ends(text)
        exported, scored = ([e[1] for e in ends[k]] for k in (False, True))
        if exported:
            rows.append(
                (
                    f"members' exports at unscored stage ends ({_spread(exported)}{_totals(ends[False])})",
                    f"{sum(exported):.0f} s",
                )
            )
        if scored:
            parts = scoring_parts(sorted({folder / name for name, _, _ in ends[True]}))
            scoring = _listed("the scorings' ", parts)
            rows.append(
                (
                    f"members' exports and scores ({_spread(scored)}{_totals(ends[True])}{scoring})",
                    f"{sum(scored):.0f} s",
                )
            )
        rows.append((f"{log.stem}: start to end", _minutes(spans[log.stem])))
    wall = re.search(r"Wall clock ([\d.]+) min", (folder / "results.md").read_text())
    rows.append(("the comparison's wall clock (`results.md`)", f"{wall[1]} min"))
    return rows


def format_block_parts(rows: list[tuple[str, str]]) -> str:
    lines = ["| part (from the records and logs) | time |", "|---|---|"]
    return "\n".join([*lines, *(f"| {part} | {time} |" for part, time in rows)])
