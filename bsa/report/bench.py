"""Tables of benchmark records (``bsa bench`` JSON, the parallel-throughput probe's JSON lines):
what the speed page (docs/results/speed.md) shows, generated from the files a run left."""

from __future__ import annotations

import json
from pathlib import Path

from bsa.config import DIAGNOSTIC_COMM_HOOKS


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


# a kernel's kind from its name, first match wins (lower case): Inductor's generated kernels first;
# cuDNN's layout transforms and its attention (``…_sdpa_…_flash_fprop…``) before its convolutions,
# whose implicit GEMMs come before cuBLAS's GEMMs; the CPU's operator names alike
KERNEL_KINDS = (
    ("compiled (Triton)", ("triton_",)),
    ("layout", ("nchwtonhwc", "nhwctonchw", "transpose")),
    ("attention", ("sdpa", "flash", "fmha", "attention")),
    ("convolution", ("convolution", "convolve", "conv2d", "fprop", "dgrad", "wgrad", "implicit_gemm")),
    (
        "normalisation",
        (
            "group_norm",
            "groupnorm",
            "layer_norm",
            "layernorm",
            "rowwisemoments",
            "fusedparams",
            "internalgradients",
            "gammabeta",
        ),
    ),
    ("matmul", ("gemm", "cutlass", "cublas", "nvjet", "aten::mm", "aten::addmm", "aten::bmm")),
    ("optimizer", ("adam", "multi_tensor_apply")),
    ("copy/cast", ("copy", "cast", "convert")),
    ("element-wise", ("elementwise", "vectorized", "reduce", "aten::")),
)


def kernel_kind(name: str) -> str:
    """The kind of a CUDA kernel (or CPU operator) named ``name`` (:data:`KERNEL_KINDS`), "other"
    where none matches."""
    low = name.lower().replace("_nocast", "")  # ATen's gpu_kernel_impl_nocast: any element-wise op
    return next((kind for kind, words in KERNEL_KINDS if any(w in low for w in words)), "other")


def kernel_shares(times: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Each kind's share of the kernels' time (:func:`kernel_kind`), largest first."""
    total = sum(ms for ms, _ in times.values())
    by_kind: dict[str, float] = {}
    for name, (ms, _) in times.items():
        by_kind[kernel_kind(name)] = by_kind.get(kernel_kind(name), 0.0) + ms
    return {k: ms / total for k, ms in sorted(by_kind.items(), key=lambda kv: -kv[1])}


def kernel_breakdown(times: dict[str, tuple[float, float]], top: int = 20) -> dict:
    """From each kernel's (ms per step, calls per step): ``kernel_ms_per_step`` (their sum),
    ``kernel_shares`` (each kind's share of it, largest first), ``kernels`` (the ``top`` kernels by
    time: name, kind, calls and ms per step, share) and ``kernel_times`` (every kernel's [ms per
    step, calls per step]: what a report classifies again when the kinds change)."""
    total = sum(ms for ms, _ in times.values())
    ranked = sorted(times.items(), key=lambda kv: -kv[1][0])[:top]
    return {
        "kernel_ms_per_step": total,
        "kernel_shares": kernel_shares(times),
        "kernels": [
            {
                "name": name[:160],
                "kind": kernel_kind(name),
                "calls": calls,
                "ms_per_step": ms,
                "share": ms / total,
            }
            for name, (ms, calls) in ranked
        ],
        "kernel_times": {name[:160]: [ms, calls] for name, (ms, calls) in times.items()},
    }


def kernel_table(bench: dict) -> str:
    """Per profiled training row (``+profile``) of a ``bsa bench`` result: each kind's share of the
    step's kernel time, one column per kind (the kinds of :data:`KERNEL_KINDS` that occur) — from
    the row's ``kernel_times`` with today's kinds where it has them, else the shares it was written with."""
    rows = [r for r in bench.get("training", []) if "kernel_shares" in r]
    shares_of = [
        kernel_shares(r["kernel_times"]) if "kernel_times" in r else r["kernel_shares"] for r in rows
    ]
    kinds = [k for k, _ in (*KERNEL_KINDS, ("other", ())) if any(k in shares for shares in shares_of)]
    lines = [
        "| model | setting | kernels (ms/step) | " + " | ".join(kinds) + " |",
        "|---|---|---|" + "---|" * len(kinds),
    ]
    for r, row_shares in zip(rows, shares_of, strict=True):
        shares = [f"{100 * row_shares[k]:.1f} %" if k in row_shares else "–" for k in kinds]
        lines.append(
            f"| {r['model']} | {r['combo']} | {r['kernel_ms_per_step']:.1f} | " + " | ".join(shares) + " |"
        )
    return "\n".join(lines)


def sampling_table(bench: dict, students=(25, 4)) -> str:
    """One row per (model, batch, mode) of a ``bsa bench --what sampling`` result: the teacher's
    seconds per clip and each of ``students``' with its speed-up over the teacher of that row's
    mode (eager or graph-replayed: the ratio stays within one mode of one run)."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in bench.get("sampling", []):
        groups.setdefault((r["model"], r["batch"], r.get("compile", "off")), {})[r["sampler"]] = r
    head = "| model | batch | mode | teacher 200 + CFG (s/clip) |"
    head += "".join(f" student {n} (s/clip) | speed-up {n} |" for n in students)
    lines = [head, "|---|---|---|---|" + "---|---|" * len(students)]
    for (model, batch, mode), rows in groups.items():
        teacher = next((r for k, r in rows.items() if k.startswith("teacher")), None)
        cells = [model, str(batch), mode, f"{teacher['seconds_per_clip']:.4f}" if teacher else "–"]
        for n in students:
            r = rows.get(f"student, {n} steps")
            cells += [f"{r['seconds_per_clip']:.4f}", f"{r['speedup']:.1f}×"] if r else ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ddp_pairs(rows: list[dict], model: str = "", devices: int = 2) -> list[tuple[dict, dict]]:
    """(one-GPU row, ``devices``-GPU row) of ``model``: each ``devices``-GPU row with the last one-GPU
    row of the same model, per-GPU batch and bucket size listed before it — the run of its own
    ``speed.sh PARTS=ddp`` call, measured just before it (one GPU has no buckets to exchange, so its
    run serves every communication hook of that call)."""
    last: dict[tuple, dict] = {}
    pairs = []
    for r in rows:
        if model not in r["model"]:
            continue
        key = (r["model"], r["batch_per_device"], r["bucket_cap_mb"])
        if r["devices"] == 1:
            last[key] = r
        elif r["devices"] == devices and key in last:
            pairs.append((last[key], r))
    return pairs


def _comm_hook(row: dict) -> str:
    return row.get("comm_hook", "none")


def _table_order(row: dict) -> tuple:
    """By model and bucket size; at one size, float32 buckets, then compressed ones, then none sent."""
    hook = _comm_hook(row)
    return row["model"], row["bucket_cap_mb"], hook != "none", hook in DIAGNOSTIC_COMM_HOOKS, hook


def ddp_scaling(result: dict, model: str = "185 M", devices: int = 2) -> float | None:
    """samples/s of ``model``'s fastest DDP row on ``devices`` GPUs over the one-GPU row of its pair
    (:func:`_ddp_pairs`), or None. Rows that exchanged no gradients (``--comm-hook noop``, a
    diagnostic) are not a training, so never the figure."""
    pairs = [
        (one, two)
        for one, two in _ddp_pairs(result.get("ddp", []), model, devices)
        if _comm_hook(two) not in DIAGNOSTIC_COMM_HOOKS
    ]
    if not pairs:
        return None
    one, two = max(pairs, key=lambda p: p[1]["samples_per_s"])
    return two["samples_per_s"] / one["samples_per_s"]


def ddp_table(results: list[dict]) -> str:
    """One row per gradient-bucket size (and communication hook, named beside the size where there
    is one; "nothing sent" for the diagnostic ``noop``) of ``bsa bench --what ddp`` results (each
    run one device count): one GPU's and two GPUs' samples/s at that bucket size and their ratio."""
    lines = [
        "| model | batch per GPU | bucket (MB) | 1 GPU samples/s | 2 GPUs samples/s | step on 2 GPUs (ms) | scaling |",
        "|---|---|---|---|---|---|---|",
    ]
    pairs = _ddp_pairs([r for result in results for r in result.get("ddp", [])])
    for one, two in sorted(pairs, key=lambda pair: _table_order(pair[1])):
        hook = _comm_hook(two)
        label = "" if hook == "none" else " (nothing sent)" if hook in DIAGNOSTIC_COMM_HOOKS else f" ({hook})"
        lines.append(
            f"| {two['model']} | {two['batch_per_device']} | {two['bucket_cap_mb']:g}{label} | {one['samples_per_s']:.0f} | "
            f"{two['samples_per_s']:.0f} | {two['step_ms']:.0f} | {two['samples_per_s'] / one['samples_per_s']:.2f}× |"
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
        out.append(f"| {k} | {f'{e[1]:.0f}' if e else '–'} | {f'{g[1]:.0f}' if g else '–'} | {ratio} |")
    return "\n".join(out)


def population_step_table(rows: list[dict]) -> str:
    """``experiments/gpu/population_step.py``'s rows: per number of students K, kind of teacher (one
    shared, or one per member) and calls (eager, or from CUDA graphs: ``--graphs``), the step time,
    the samples/s of all members, and the step time against K steps of one student alone (the same
    teacher and calls)."""
    one = {(r["teachers"], r.get("graphs", False)): r["step_ms"] for r in rows if r["members"] == 1}
    out = [
        "| students K | teacher | calls | step (ms) | samples/s, all members | K steps of one student alone / one population step |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r.get("graphs", False), r["members"], r["teachers"] != "shared")):
        k, alone = r["members"], one.get((r["teachers"], r.get("graphs", False)))
        ratio = f"{k * alone / r['step_ms']:.2f}×" if alone else "–"
        teacher = "one shared" if r["teachers"] == "shared" else "one per member"
        calls = ("graphed" if r.get("graphs") else "eager") + (
            " + cudnn.benchmark" if r.get("cudnn_benchmark") else ""
        )
        out.append(
            f"| {k} | {teacher} | {calls} | {r['step_ms']:.1f} | {r['samples_per_s_all']:.0f} | {ratio} |"
        )
    return "\n".join(out)


def population_calls_table(runs: dict[str, list[dict]]) -> str:
    """``experiments/gpu/population_kernels.py``'s timings, one run per GroupNorm form (``runs``:
    its label → rows): per way of running the calls (``variant``), the K teachers' forward and the
    K students' forward + backward in ms; "–" where that run did not time it."""
    out = [
        "| GroupNorm | calls | teachers' forward (ms) | students' forward + backward (ms) |",
        "|---|---|---|---|",
    ]
    for label, rows in runs.items():
        ms: dict[str, dict[str, float]] = {}
        for r in rows:
            if "call" in r:
                ms.setdefault(r["variant"].replace("+profile", ""), {})[r["call"]] = r["ms"]
        for variant, calls in ms.items():
            cells = [f"{calls[c]:.1f}" if c in calls else "–" for c in ("teacher", "student")]
            out.append(f"| {label} | {variant} | {cells[0]} | {cells[1]} |")
    return "\n".join(out)


def _best(rows: list[dict], key: str, lowest: bool) -> dict | None:
    rows = [r for r in rows if key in r]
    if not rows:
        return None
    return (min if lowest else max)(rows, key=lambda r: r[key])


def speed_summary(result: dict, ddp2_185m_scaling: float | None = None) -> dict:
    """The figures of issue "Speed at AudioLDM scale" from one ``bsa bench`` result (sampling and
    training rows of one run): for each, the best setting the run measured, named beside it; a
    speed-up is against the teacher sampled in the same mode (eager, graphed or compiled).
    Figures the run did not measure are None."""

    def student25(model: str, batch: int) -> dict | None:
        return _best(
            [
                r
                for r in result.get("sampling", [])
                if model in r["model"] and r["batch"] == batch and r["sampler"] == "student, 25 steps"
            ],
            "seconds_per_clip",
            lowest=True,
        )

    def mode(row):
        return None if row is None else row.get("compile", "off")

    s185_1, s185_64, s3_1 = student25("185 M", 1), student25("185 M", 64), student25("3.2 M", 1)
    training = [r for r in result.get("training", []) if "samples_per_s" in r]
    t185 = _best(
        [r for r in training if "185 M" in r["model"] and r["batch"] == 64 and r.get("bf16")],
        "samples_per_s",
        False,
    )
    compiled = [r for r in training if "185 M" in r["model"] and r.get("compile")]
    embedded = [r for r in training if "3.2 M" in r["model"]]
    eager = next((r for r in embedded if r["combo"] == "fp32"), None)
    best_embedded = _best(embedded, "samples_per_s", lowest=False)
    return {
        "student25_185m_b1_s_per_clip": s185_1 and s185_1["seconds_per_clip"],
        "speedup_185m_b1": s185_1 and s185_1["speedup"],
        "speedup_185m_b64": s185_64 and s185_64["speedup"],
        "student25_embedded_b1_s_per_clip": s3_1 and s3_1["seconds_per_clip"],
        "train_185m_b64_samples_per_s": t185 and t185["samples_per_s"],
        "train_185m_b64_mfu": t185 and t185.get("mfu_bf16_peak"),
        "compile_warmup_s": min(r["warmup_s"] for r in compiled) if compiled else None,
        "train_embedded_speedup": best_embedded["samples_per_s"] / eager["samples_per_s"]
        if eager and best_embedded
        else None,
        "ddp2_185m_scaling": ddp2_185m_scaling if ddp2_185m_scaling is not None else ddp_scaling(result),
        "settings": {
            "sampling_185m_b1": mode(s185_1),
            "sampling_185m_b64": mode(s185_64),
            "sampling_embedded_b1": mode(s3_1),
            "train_185m_b64": t185 and t185["combo"],
            "train_embedded": best_embedded and best_embedded["combo"],
        },
        "device": result.get("device"),
        "date": result.get("date"),
        "torch": result.get("torch"),
    }


def merge_bench_runs(results: list[dict]) -> dict:
    """One result of several ``bsa bench`` runs' rows, for :func:`speed_summary`: each model's
    sampling rows and each model's training rows from the last run that measured them, so that every
    ratio (a student against its teacher, a setting against eager) stays within one run; the DDP rows of
    every run (each run measures one device count). ``device``, ``date`` and ``torch`` are each
    run's, joined where they differ; ``runs`` says which part came from which run."""
    merged: dict = {"runs": []}
    last: dict[str, dict[str, list[dict]]] = {"sampling": {}, "training": {}}  # part → model → its rows
    for i, result in enumerate(results):
        parts = [p for p in ("sampling", "training", "ddp") if result.get(p)]
        for part, by_model in last.items():
            for model in dict.fromkeys(row["model"] for row in result.get(part, [])):
                by_model[model] = [row for row in result[part] if row["model"] == model]
            if by_model:
                merged[part] = [row for rows in by_model.values() for row in rows]
        merged["ddp"] = merged.get("ddp", []) + result.get("ddp", [])  # one run per device count
        merged["runs"].append(
            {k: result.get(k) for k in ("device", "date", "torch")} | {"parts": parts, "index": i}
        )
    for key in ("device", "date", "torch"):
        values = list(dict.fromkeys(str(r.get(key)) for r in results))
        merged[key] = " / ".join(values)
    return merged


def save_speed_summary(result: dict, out: str | Path, **provenance) -> dict:
    """The speed issue's figures of ``result`` (:func:`speed_summary`) with ``provenance`` (the
    command, the bench files) written whole to ``out`` (a kill leaves the old file or the new)."""
    from bsa.durable import replace_durably

    figures = speed_summary(result) | provenance
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp")
    tmp.write_text(json.dumps(figures, indent=1) + "\n")
    replace_durably(tmp, out)
    return figures


def write_speed_summary(paths: list[str], out: str, command: str) -> int:
    """``bsa bench --from RUN.json ... --summary OUT``: the speed issue's figures of earlier runs
    (:func:`merge_bench_runs`) to ``out``, the runs and ``command`` inside."""
    merged = merge_bench_runs([json.loads(Path(p).read_text()) for p in paths])
    runs = [run | {"file": str(paths[run.pop("index")])} for run in merged["runs"]]
    figures = save_speed_summary(merged, out, command=command, bench=list(paths), runs=runs)
    print(json.dumps({k: v for k, v in figures.items() if k not in ("runs", "bench")}, indent=1))
    return 0
