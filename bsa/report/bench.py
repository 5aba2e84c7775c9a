"""Tables of benchmark records (``bsa bench`` JSON, the parallel-throughput probe's JSON lines):
what the README's speed section shows, generated from the files a run left."""

from __future__ import annotations

import json
from pathlib import Path


def training_table(bench: dict) -> str:
    """One row per training setting of a ``bsa bench --what training`` result, with its
    throughput relative to the same model's first (baseline) row of the run."""
    rows = [r for r in bench.get("training", []) if "samples_per_s" in r]
    base: dict[str, float] = {}
    lines = [
        "| model | batch | setting | samples/s | step (ms) | vs first row | warm-up s | MFU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        first = base.setdefault(r["model"], r["samples_per_s"])
        mfu = r.get("mfu_bf16_peak")
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['combo']} | {r['samples_per_s']:.0f} | {r['step_ms']:.1f} | "
            f"{r['samples_per_s'] / first:.2f}× | {r['warmup_s']:.1f} | {'–' if mfu is None else f'{100 * mfu:.1f} %'} |"
        )
    return "\n".join(lines)


def probe_table(folder: str | Path) -> str:
    """The probe's aggregate samples/s per number of processes K, eager and graphed, from its
    ``probe_K<K>[--graphs].jsonl`` files (one line per process)."""
    found: dict[int, dict[str, tuple[int, float]]] = {}
    for path in sorted(Path(folder).glob("probe_K*.jsonl")):
        stem = path.stem[len("probe_K") :]
        graphs = stem.endswith("--graphs")
        k = int(stem.removesuffix("--graphs"))
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        found.setdefault(k, {})["graphs" if graphs else "eager"] = (
            len(lines),
            sum(x["samples_per_s"] for x in lines),
        )
    out = [
        "| processes K | eager: samples/s in all | graphed: samples/s in all | graphed / eager |",
        "|---|---|---|---|",
    ]
    for k in sorted(found):
        e, g = found[k].get("eager"), found[k].get("graphs")
        ratio = f"{g[1] / e[1]:.2f}×" if e and g else "–"
        out.append(
            f"| {k} | {f'{e[1]:.0f}' if e else '–'} | {f'{g[1]:.0f}' if g else '–'} | {ratio} |"
        )
    return "\n".join(out)
