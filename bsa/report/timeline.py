"""Where a comparison's time went, read from its runs' records and, for what no record holds, its
logs (``bsa compare``'s console and each run's): the parts the README's block tables show,
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
        setup = re.search(r"^set-up\s+([\d.]+) s \((\d+) members[):]", text, re.M)
        rows.append((f"{log.stem}: set-up ({setup[2]} members)", f"{setup[1]} s"))
        first = re.search(r"^runs .* members in \S+: ([^,\s]+)", text, re.M)[1]
        for stage in _stages(folder / first):
            rows.append(
                (
                    f"stage {stage['stage']} (to {stage['steps']} steps): {setup[2]} students' training",
                    f"{stage['train_seconds']:.1f} s",
                )
            )
        exported = [float(s) for s in re.findall(r"member \S+: exported in ([\d.]+) s", text)]
        scored = [float(s) for s in re.findall(r"member \S+: exported and scored in ([\d.]+) s", text)]
        if exported:
            rows.append(
                (f"members' exports at unscored stage ends ({_spread(exported)})", f"{sum(exported):.0f} s")
            )
        if scored:
            rows.append((f"members' exports and scores ({_spread(scored)})", f"{sum(scored):.0f} s"))
        rows.append((f"{log.stem}: start to end", _minutes(spans[log.stem])))
    wall = re.search(r"Wall clock ([\d.]+) min", (folder / "results.md").read_text())
    rows.append(("the comparison's wall clock (`results.md`)", f"{wall[1]} min"))
    return rows


def format_block_parts(rows: list[tuple[str, str]]) -> str:
    lines = ["| part (from the records and logs) | time |", "|---|---|"]
    return "\n".join([*lines, *(f"| {part} | {time} |" for part, time in rows)])
