"""Where a comparison's time went, read from its logs (``bsa compare``'s console and each run's): the
parts the README's block tables show, generated here rather than copied from the logs by hand."""

from __future__ import annotations

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


def block_parts(folder: str | Path) -> list[tuple[str, str]]:
    """(part, time) of a comparison folder brought home (``compare.log``, ``logs/``, ``results.md``):
    each guided stage (its training from its log), each population's set-up, stages, members' stage
    ends and scorings, and the comparison's wall clock."""
    folder = Path(folder)
    spans = run_spans((folder / "compare.log").read_text())
    rows = []
    for log in sorted((folder / "logs").glob("guided-*.log")):
        m = re.search(r"stage 0: (\d+) steps .* in ([\d.]+) s of training = (\d+) samples/s", log.read_text())
        rows.append(
            (
                f"{log.stem}: {m[1]} steps ({m[2]} s of training, {m[3]} samples/s), the teacher's "
                "reference and the scores",
                _minutes(spans[log.stem]),
            )
        )
    for log in sorted((folder / "logs").glob("population-*.log")):
        text = log.read_text().replace("\r", "\n")
        setup = re.search(r"^set-up\s+([\d.]+) s \((\d+) members\)", text, re.M)
        rows.append((f"{log.stem}: set-up ({setup[2]} members)", f"{setup[1]} s"))
        plan = dict(re.findall(r"^stage (\d+) \(progressive, (\d+ → \d+) steps\)", text, re.M))
        for stage, steps, k, seconds in re.findall(
            r"^stage (\d+): (\d+) steps × \d+ × (\d+) students in ([\d.]+) s of training", text, re.M
        ):
            rows.append(
                (
                    f"stage {stage}, {plan[stage]} steps: {steps} steps of {k} students' training",
                    f"{seconds} s",
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
    lines = ["| part (from the logs) | time |", "|---|---|"]
    return "\n".join([*lines, *(f"| {part} | {time} |" for part, time in rows)])
