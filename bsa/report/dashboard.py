"""The static HTML dashboard of a weighting comparison (no server, no network, no script from
elsewhere): metrics against sampling steps per weighting with seed error bars, the weighting
curves w(log SNR), the loss curves, the results table, and for a few captions an audio player and
a spectrogram per weighting and step count next to the teacher's. Plots are inline SVG; the clips
(Ogg) and spectrograms (PNG) are copied next to the page, so the folder can be committed or moved.
Every fact is read from the runs' records (run, weighting, seed, stage, mode; each run's config.yaml
for its weighting's hyper-parameters), never from folder names.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path

from bsa.config import parse_weighting
from bsa.diffusion.weighting import family_point
from bsa.report.metrics import BY_KEY, QUALITY
from bsa.report.records import (
    comparison_profiles,
    comparison_records,
    comparison_rows,
    loss_curve,
    run_config,
)
from bsa.report.study import STUDY_STEPS, format_best_point, is_resolved, metric_intervals, verdict_rows
from bsa.report.tables import aggregate

PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [start + k * step for k in range(int((hi - start) / step + 1e-9) + 1)]


def svg_plot(
    series: list[tuple[str, list[tuple[float, float, float]]]],
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    hline: tuple[str, float] | None = None,
    width: int = 480,
    height: int = 300,
) -> str:
    """An inline SVG line plot: ``series`` = [(label, [(x, y, err), …])]; log axes in base 2 (x) / 10 (y)."""
    fx = (lambda v: math.log2(v)) if logx else (lambda v: v)
    fy = (lambda v: math.log10(max(v, 1e-12))) if logy else (lambda v: v)
    pts = [(x, y, e) for _, s in series for x, y, e in s if y == y]
    if not pts:
        return f'<svg class="plot" width="{width}" height="{height}"><text x="10" y="20">{html.escape(title)}: no data</text></svg>'
    ys = [fy(y - e) if logy and y - e > 0 else fy(y) for _, y, e in pts] + [fy(y + e) for _, y, e in pts]
    if hline:
        ys.append(fy(hline[1]))
    x0, x1 = min(fx(x) for x, _, _ in pts), max(fx(x) for x, _, _ in pts)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 - y0 <= 1e-9 * max(1.0, abs(y0), abs(y1)):  # a flat series: a span its labels can tell apart
        y0, y1 = y0 - 0.05 * max(abs(y0), 1e-3), y1 + 0.05 * max(abs(y1), 1e-3)
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    yticks, labels = [], set()
    for t in _ticks(y0, y1):
        label = f"{10**t:.3g}" if logy else f"{t:.3g}"
        if label not in labels:  # ticks closer than the labels' precision
            labels.add(label)
            yticks.append((t, label))
    # the left margin makes room for the widest tick label beside the rotated axis title
    L, R, T, B = max(60, 30 + 7 * max((len(label) for _, label in yticks), default=0)), 130, 28, 42
    W, H = width - L - R, height - T - B

    def px(x):
        return L + (fx(x) - x0) / (x1 - x0) * W

    def py_t(t):
        return T + (1 - (t - y0) / (y1 - y0)) * H

    out = [
        f'<svg class="plot" width="{width}" height="{height}" font-size="11">',
        f'<text x="{L}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{L}" y="{T}" width="{W}" height="{H}" fill="none" stroke="#999"/>',
    ]
    xt = sorted({x for x, _, _ in pts}) if logx else _ticks(x0, x1)
    for x in xt:
        X = px(x)
        out.append(
            f'<line x1="{X:.1f}" y1="{T + H}" x2="{X:.1f}" y2="{T + H + 4}" stroke="#999"/>'
            f'<text x="{X:.1f}" y="{T + H + 15}" text-anchor="middle">{x:g}</text>'
        )
    for t, label in yticks:
        Y = py_t(t)
        out.append(
            f'<line x1="{L - 4}" y1="{Y:.1f}" x2="{L + W}" y2="{Y:.1f}" stroke="#eee"/>'
            f'<text x="{L - 6}" y="{Y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    out.append(f'<text x="{L + W / 2}" y="{height - 6}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(
        f'<text x="14" y="{T + H / 2}" text-anchor="middle" transform="rotate(-90 14 {T + H / 2})">{html.escape(ylabel)}</text>'
    )
    if hline:
        Y = py_t(fy(hline[1]))
        out.append(
            f'<line class="ref" x1="{L}" y1="{Y:.1f}" x2="{L + W}" y2="{Y:.1f}" stroke="#000" stroke-dasharray="5,4"/>'
        )
    for k, (label, s) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        s = sorted((p for p in s if p[1] == p[1]), key=lambda p: fx(p[0]))
        if not s:
            continue
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{px(x):.1f},{py_t(fy(y)):.1f}" for i, (x, y, _) in enumerate(s)
        )
        out.append(f'<path class="series" d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        for x, y, e in s:
            X, Y = px(x), py_t(fy(y))
            if e > 0:
                lo = py_t(fy(y - e)) if not logy or y - e > 0 else T + H
                out.append(
                    f'<line x1="{X:.1f}" y1="{lo:.1f}" x2="{X:.1f}" y2="{py_t(fy(y + e)):.1f}" stroke="{colour}"/>'
                )
            out.append(f'<circle cx="{X:.1f}" cy="{Y:.1f}" r="2.5" fill="{colour}"/>')
        ly = T + 12 + 15 * k
        out.append(
            f'<line x1="{L + W + 8}" y1="{ly - 4}" x2="{L + W + 24}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{L + W + 28}" y="{ly}">{html.escape(label)}</text>'
        )
    if hline:  # its label is the legend's last entry (beside the line it overlapped the series' labels)
        ly = T + 12 + 15 * len(series)
        out.append(
            f'<line x1="{L + W + 8}" y1="{ly - 4}" x2="{L + W + 24}" y2="{ly - 4}" stroke="#000" stroke-dasharray="5,4"/>'
            f'<text class="ref-label" x="{L + W + 28}" y="{ly}">{html.escape(hline[0])}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def heat_table(cells: dict, title: str, better_low: bool) -> str:
    """A (floor, γ) grid as an HTML table: ``cells`` (floor, γ) → (value, text), shaded by value
    (darker is better: lower where ``better_low``); "–" where the grid has no point."""
    floors, gammas = sorted({f for f, _ in cells}), sorted({g for _, g in cells})
    values = [v for v, _ in cells.values()]
    lo, hi = min(values), max(values)

    def shade(v: float) -> str:
        x = (v - lo) / (hi - lo) if hi > lo else 0.5
        x = 1 - x if better_low else x
        return f"rgb({int(255 - 180 * x)},{int(255 - 110 * x)},255)"

    head = "".join(f"<th>γ = {'∞' if g == float('inf') else f'{g:g}'}</th>" for g in gammas)
    rows = []
    for f in floors:
        tds = "".join(
            f"<td style='background:{shade(cells[f, g][0])}'>{html.escape(cells[f, g][1])}</td>"
            if (f, g) in cells
            else "<td>–</td>"
            for g in gammas
        )
        rows.append(f"<tr><th>floor = {f:g}</th>{tds}</tr>")
    return f"<table class='heat'><caption>{html.escape(title)}</caption><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def heat_map(table: dict, weightings: list[str], steps: int, metric: str) -> str:
    """The BSA family's (floor, γ) grid at ``steps`` as a table coloured by ``metric`` (mean ± std over
    seeds, the mean alone for one seed; darker is better): the ``bsa(floor, γ)`` labels and the named baselines the family
    nests (:func:`bsa.diffusion.weighting.family_point`). Empty below two points."""
    cells = {}
    for w in weightings:
        try:
            name, params = parse_weighting(w)
        except ValueError:
            continue
        point = family_point(name, **params)
        if point is not None and metric in table.get((w, steps), {}):
            cells[point] = (table[w, steps][metric][0], _fmt(table[w, steps][metric]))
    if len(cells) < 2:
        return ""
    return heat_table(cells, f"{BY_KEY[metric].title} @ {steps} steps", BY_KEY[metric].better == "lower")


def map_steps(steps) -> list[int]:
    """The step counts a comparison's dashboard draws the (floor, γ) map at: the study's (25 and 4,
    :data:`bsa.report.study.STUDY_STEPS`) that the comparison reached, and its last one."""
    return sorted(({min(steps)} | set(STUDY_STEPS)) & set(steps), reverse=True)


def study_verdicts(summary: dict) -> str:
    """A comparison's study (``<comparison>/study/summary.json``, written by ``bsa compare`` at its
    end) on its dashboard: where the reference wins, ties or loses — every resolved paired
    difference, against how many would resolve by chance — and the best point (``bsa study``'s
    verdict table and line, :func:`bsa.report.study.verdict_rows`)."""
    header, rows, chance = verdict_rows(summary)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f"<h2>Where {html.escape(summary['reference'])} wins, ties or loses</h2>"
        f"<table class='verdicts'><tr>{head}</tr>{body}</table>"
        f"<p>{html.escape(chance)}</p><p>{html.escape(format_best_point(summary))}</p>"
    )


STUDY_MAPS = (  # (summary key, title, lower is better, digits)
    ("clap", "CLAP", False, 4),
    ("attribute_acc", "attribute accuracy", False, 4),
    ("fad_vs_teacher", "FAD vs teacher", True, 2),
)


def study_maps(summary: dict) -> str:
    """The weighting study's (floor, γ) map as a page of its own (``bsa study`` → ``map.html``): per
    step count of ``summary`` (:func:`bsa.report.study.study_summary`), each score with its 95 %
    interval and each paired difference to the reference (✓: resolved), one heat table each —
    a map pooled from several comparisons, which no single comparison's dashboard shows."""
    from bsa.report.fidelity import interval_cell

    ref = summary["reference"]
    sections = []
    for n, block in summary["steps"].items():
        points = {}
        for row in block.values():
            f = row.get("family")
            if f:
                points[float(f["floor"]), float(f["gamma"])] = row
        if len(points) < 2:
            continue
        tables = []
        for key, title, better_low, digits in STUDY_MAPS:
            cells = {
                p: (r[key]["mean"], interval_cell(r[key], f"{{:.{digits}f}}"))
                for p, r in points.items()
                if r.get(key)
            }
            if len(cells) > 1:
                tables.append(heat_table(cells, f"{title} @ {n} steps", better_low))
        for key, title, better_low, digits in STUDY_MAPS:
            cells = {}
            for p, r in points.items():
                d = r.get(f"diff_to_{ref}", {}).get(key)
                if r is block.get(ref):
                    cells[p] = (0.0, "reference")
                elif d:
                    cells[p] = (
                        d["mean"],
                        interval_cell(d, f"{{:+.{digits}f}}") + (" ✓" if is_resolved(d) else ""),
                    )
            if len(cells) > 1:
                tables.append(heat_table(cells, f"Δ {title} vs {ref} @ {n} steps (paired)", better_low))
        sections.append(f"<h2>{n} steps</h2><div class='maps'>{''.join(tables)}</div>")
    seeds = ", ".join(map(str, summary.get("seeds", [])))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>bsa — the (floor, γ) map</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
.maps {{ display: flex; flex-wrap: wrap; gap: 16px; }}
</style></head><body>
<h1>The BSA family's (floor, γ) map</h1>
<p>w(SNR) = clip(SNR, floor, γ) on the x-space loss; seeds {html.escape(seeds)}, {summary.get("captions")} captions,
{html.escape(str(summary.get("device")))}, {html.escape(str(summary.get("date", "")))}. Intervals: 95 %; Δ: paired
difference to {html.escape(ref)} (✓: the interval excludes zero); darker is better. Command:
<code>{html.escape(str(summary.get("command", "")))}</code></p>
{"".join(sections) or "<p>fewer than two points of the map</p>"}
</body></html>
"""


RENDER_CHECK = """
<script>
// Render check (read by the test in headless Chromium): counts drawn plots, loaded images and audio.
(function () {
  const out = document.getElementById('render-check');
  const audios = Array.from(document.querySelectorAll('audio'));
  const state = {plots: 0, series: 0, images_ok: 0, images_failed: 0, audio_ok: 0, audio_failed: 0};
  function report() { out.textContent = JSON.stringify(state); }
  state.plots = document.querySelectorAll('svg.plot').length;
  state.series = document.querySelectorAll('svg.plot path.series').length;
  // the (floor, γ) maps: their captions, and how many of their cells are laid out and shaded
  const heat = Array.from(document.querySelectorAll('table.heat'));
  state.heat_maps = heat.map(function (t) { return t.caption ? t.caption.textContent : ''; });
  state.heat_cells = heat.reduce(function (n, t) {
    return n + Array.from(t.querySelectorAll('td')).filter(function (td) {
      const box = td.getBoundingClientRect();
      return box.width > 0 && box.height > 0 && td.style.background !== '';
    }).length;
  }, 0);
  // labels drawn over one another (legend entries, axis labels, the reference line's label)
  function overlaps() {  // once laid out (on load): fonts change the labels' widths
  state.text_overlaps = 0; state.overlapping = [];
  document.querySelectorAll('svg.plot').forEach(function (svg) {
    // (on-screen boxes: getBBox would ignore the rotation of the y-axis label)
    const texts = Array.from(svg.querySelectorAll('text'));
    const boxes = texts.map(function (t) { return t.getBoundingClientRect(); });
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) {
        state.text_overlaps++;
        if (state.overlapping.length < 5) state.overlapping.push([texts[0].textContent, texts[i].textContent, texts[j].textContent]);
      }
    }
  });
  }
  overlaps();
  function images() {
    state.images_ok = 0; state.images_failed = 0;
    document.querySelectorAll('img').forEach(function (img) {
      if (img.complete && img.naturalWidth > 0) state.images_ok++; else if (img.complete) state.images_failed++;
    });
  }
  audios.forEach(function (a) {
    a.addEventListener('loadedmetadata', function () { if (a.duration > 0) state.audio_ok++; images(); report(); });
    a.addEventListener('error', function () { state.audio_failed++; images(); report(); });
    a.load();
  });
  window.addEventListener('load', function () { overlaps(); images(); report(); });
  images(); report();
})();
</script>
"""


def build_dashboard(out: Path, cfg) -> Path:
    """Write ``out/dashboard/index.html`` (+ media) from the comparison folder ``out``. ``cfg``
    gives only what to show (the weightings' order, the seeds' first, the audio step counts)."""
    import torch

    from bsa.diffusion import get_weighting

    out = Path(out)
    rows = comparison_rows(out)
    if not rows:
        raise FileNotFoundError(f"{out}: no evaluation records (eval.jsonl) — run `make compare` first")
    table = aggregate(rows)
    weightings = [w for w in cfg.compare.weightings if any(k[0] == w for k in table)]
    records = comparison_records(out)
    intervals = metric_intervals(records)
    teacher_rec = next((r for r in records if r["mode"] == "teacher"), None)
    teacher_steps = teacher_rec["steps"] if teacher_rec else cfg.distill.teacher_steps
    seed0 = min(r["seed"] for r in rows)

    def first_run(w: str) -> str | None:  # the run of weighting w and the first seed (its students)
        return next(
            (r["run"] for r in records if r["weighting"] == w and r["seed"] == seed0 and r["stage"] >= 1),
            None,
        )

    page_dir = out / "dashboard"
    media = page_dir / "media"
    if media.exists():
        shutil.rmtree(media)
    media.mkdir(parents=True)
    teacher = next((v for (w, _), v in table.items() if w == "teacher"), {})
    parts = []
    for metric in QUALITY:
        label = {"fad_real": "FAD vs real clips", "fad_teacher": "FAD vs teacher outputs"}.get(
            metric, BY_KEY[metric].title
        )

        def point(w, n, v, metric=metric):  # 95 % interval where the records give one, else ± std
            ci = intervals.get((w, n), {}).get(metric)
            return (n, v[metric][0], (ci["hi"] - ci["lo"]) / 2 if ci else v[metric][1])

        series = [
            (w, [point(ww, n, v) for (ww, n), v in table.items() if ww == w and metric in v])
            for w in weightings
        ]
        ref = (
            (f"teacher @ {teacher_steps}", teacher[metric][0])
            if metric in teacher and metric not in ("fad_teacher", "fad_teacher_ratio")  # 0 by definition
            else None
        )
        parts.append(
            svg_plot(
                series, f"{label} vs sampling steps", "sampling steps (log₂)", label, logx=True, hline=ref
            )
        )
        # the same plot as a standalone file (for READMEs and papers)
        standalone = parts[-1].replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
        (page_dir / f"{metric}.svg").write_text(standalone)
    # the weighting curves on the 1000-step grid, with each run's own hyper-parameters
    curves = []
    for w in weightings:
        run = first_run(w)
        run_cfg = run_config(out / run) if run and (out / run / "config.yaml").is_file() else cfg
        schedule = run_cfg.schedule.build()
        snr = schedule.snr(torch.arange(schedule.num_train_timesteps)).float()
        log_snr = snr.log()
        if run_cfg is not cfg:  # the run's own weighting and hyper-parameters (w is its label)
            name, params = run_cfg.distill.weighting, run_cfg.distill.weighting_kwargs
        else:  # the spec, on this config's defaults
            name, given = parse_weighting(w)
            params = cfg.distill.weighting_kwargs_of(name) | given
        values = get_weighting(name, **params)(snr)
        curves.append(
            (w, [(float(x), float(y), 0.0) for x, y in zip(log_snr[::10], values[::10], strict=True)])
        )
    parts.append(
        svg_plot(curves, "loss weight w(λ) on the 1000-step grid", "log SNR λ", "w (x-space MSE)", logy=True)
    )
    # the final students' error per student step, paired (same latents and noise for every weighting)
    profiles = comparison_profiles(out)
    last = min((p["steps"] for p in profiles if p["mode"] == "progressive"), default=None)
    chosen = {
        w: next((p for p in profiles if p["run"] == first_run(w) and p["steps"] == last), None)
        for w in weightings
    }
    for part, key, title, logy in (
        ("training", "share", "share of the weighted loss in training", False),
        ("profile", "x_mse", "final distillation error (x-space MSE)", True),
        ("profile", "grad_share", "share of the weighted loss's gradient norm", False),
    ):
        series = [
            (
                w,
                [(r.get("step", r.get("level", 0)) + 1, r[key], 0.0) for r in p.get(part, []) if key in r]
                if p
                else [],
            )
            for w, p in chosen.items()
        ]
        parts.append(
            svg_plot(
                series,
                f"{title} per student step @ {last} steps",
                "student step (1 = highest noise)",
                title,
                logy=logy,
            )
        )
    losses = [(w, loss_curve(out / first_run(w)) if first_run(w) else []) for w in weightings]
    parts.append(
        svg_plot(
            losses, f"training loss, all stages (seed {seed0})", "optimizer step", "weighted loss", logy=True
        )
    )

    # table
    steps = sorted({n for (w, n) in table if w in weightings}, reverse=True)
    maps = (
        "".join(
            heat_map(table, weightings, n, metric)
            for n in map_steps(steps)
            for metric in ("clap", "acc_mean", "fad_teacher")
        )
        if steps
        else ""
    )
    head = "".join(f"<th>{html.escape(w)}</th>" for w in weightings)
    trs = []
    for metric in QUALITY:
        if metric in teacher:
            trs.append(
                f"<tr><td>{metric}</td><td>teacher @ {teacher_steps}</td>"
                f"<td colspan='{len(weightings)}'>{teacher[metric][0]:.3f}</td></tr>"
            )
        for n in steps:
            cells = "".join(f"<td>{_fmt(table.get((w, n), {}).get(metric))}</td>" for w in weightings)
            trs.append(f"<tr><td>{metric}</td><td>{n}</td>{cells}</tr>")
    table_html = f"<table><tr><th>metric</th><th>steps</th>{head}</tr>{''.join(trs)}</table>"

    study = out / "study" / "summary.json"
    verdicts_html = study_verdicts(json.loads(study.read_text())) if study.is_file() else ""

    # audio: the teacher and, per weighting (first seed), the students at compare.audio_steps
    show = [n for n in cfg.compare.audio_steps if n in steps] or steps[-1:]
    audio_rows = []
    if teacher_rec:
        for i, sample in enumerate(teacher_rec["samples"]):
            cells = [_media_cell(out, teacher_rec, i, media, "teacher")]
            for w in weightings:
                for n in show:
                    rec = next(
                        (
                            r
                            for r in records
                            if r["weighting"] == w
                            and r["seed"] == seed0
                            and r["steps"] == n
                            and r["stage"] >= 1
                        ),
                        None,
                    )
                    cells.append(_media_cell(out, rec, i, media, f"{w} @ {n}") if rec else "<td>–</td>")
            audio_rows.append(
                f"<tr><td class='cap'>{html.escape(sample['caption'])}</td>{''.join(cells)}</tr>"
            )
    heads = "<th>caption</th><th>teacher</th>" + "".join(
        f"<th>{html.escape(w)} @ {n}</th>" for w in weightings for n in show
    )
    audio_html = f"<table class='audio'><tr>{heads}</tr>{''.join(audio_rows)}</table>"
    protocol = teacher_rec["protocol"] if teacher_rec else {}
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>bsa — {html.escape(out.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 12px; }}
table {{ border-collapse: collapse; margin: 12px 0; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
td.cap {{ text-align: left; max-width: 220px; }}
table.audio td {{ text-align: center; }}
table.verdicts td {{ text-align: left; max-width: 420px; }}
.maps {{ display: flex; flex-wrap: wrap; gap: 16px; }}
table.audio img {{ display: block; width: 200px; }}
table.audio audio {{ width: 200px; }}
</style></head><body>
<h1>Loss weightings compared — {html.escape(out.name)}</h1>
<p>{html.escape(cfg.distill.plan.describe())} from the {teacher_steps}-step CFG teacher; seeds {sorted({r["seed"] for r in rows})};
{cfg.distill.steps_per_stage} optimizer steps per stage. Error bars: 95 % intervals (CLAP and attribute accuracy: bootstrap over seeds and
captions; FAD vs teacher and its ratio to the floor: half-sample standard errors and the spread over seeds); std over
seeds for the other metrics.
Protocol: {html.escape(", ".join(f"{k}={v}" for k, v in protocol.items()))}.</p>
<div class="plots">{"".join(parts)}</div>
{f"<h2>The BSA(floor, γ) map</h2><div class='maps'>{maps}</div>" if maps else ""}
{verdicts_html}
<h2>Results</h2>{table_html}
<h2>Listen</h2>{audio_html}
<pre id="render-check">not rendered</pre>
{RENDER_CHECK}
</body></html>
"""
    path = page_dir / "index.html"
    tmp = path.with_name("index.html.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path


def _fmt(v) -> str:
    if not v:
        return "–"
    return f"{v[0]:.3f} ± {v[1]:.3f}" if v[2] > 1 else f"{v[0]:.3f}"


def _media_cell(out: Path, rec: dict, i: int, media: Path, label: str) -> str:
    if rec is None or i >= len(rec["samples"]):
        return "<td>–</td>"
    s = rec["samples"][i]
    run_dir = out / rec["run"]
    if not all((run_dir / s[key]).is_file() for key in ("audio", "spectrogram")):
        return "<td>not kept</td>"  # records brought back without their audio (a results folder)
    folder = media / rec["run"] / Path(s["audio"]).parent.name
    folder.mkdir(parents=True, exist_ok=True)
    for key in ("audio", "spectrogram"):
        shutil.copy2(run_dir / s[key], folder / Path(s[key]).name)
    rel = folder.relative_to(media.parent)
    return (
        f"<td><img src='{rel}/{Path(s['spectrogram']).name}' alt='{html.escape(label)}'>"
        f"<audio controls preload='metadata' src='{rel}/{Path(s['audio']).name}'></audio></td>"
    )
