"""The comparison runner: ``bsa compare experiments/embedded-gpu.yaml distill.target_steps=25 compare.seeds=[0,1,2]``.

Compare loss weightings: for each seed, one shared guided stage (the w-conditioned teacher), then
one progressive distillation per weighting from it — same teacher, same data order, same steps —
each stage scored by the evaluation callback against the real clips and the CFG teacher. W&B
groups every stage run under the comparison id. Finally results.json / results.md (mean ± std
over seeds per weighting and step count), the dashboard (``bsa.report.dashboard``) and the
weighting study's summary (``bsa.report.study``) in ``study/``.
Runs are separate processes (``compare.parallel`` at once), spread over the visible GPUs when
each run takes one (each started on the GPU with the fewest runs); running the same command
again skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bsa.config import WEIGHTING_PARAMETERS, BsaConfig, spec_weighting
from bsa.experiment.distill import EXIT_UNFINISHED
from bsa.experiment.runs import member_run_name, population_name


def compare_id(cfg: BsaConfig) -> str:
    """``compare.id``, else ``<preset>-<N>steps`` (``-grid<ρ>`` on a grid of another spacing)."""
    rho = cfg.distill.grid_power
    return cfg.compare.id or f"{cfg.preset}-{cfg.distill.target_steps}steps" + (
        f"-grid{rho:g}" if rho != 1 else ""
    )


def compare_dir(cfg: BsaConfig) -> Path:
    return Path(cfg.paths.output_root) / "compare" / compare_id(cfg)


def planned_runs(cfg: BsaConfig, base_overrides: list[str]) -> list[list[dict]]:
    """Waves of runs: [guided stage per seed], then [every (weighting, seed)]. Each run is
    ``{"name", "overrides"}``; ``overrides`` go after the user's own."""
    c, d = cfg.compare, cfg.distill
    cid, out = compare_id(cfg), compare_dir(cfg)
    common = [
        f"paths.output_root={out}",
        f"logging.wandb_group={cid}",
        f"distill.reference_teacher={cfg.models.teacher}",
        f"eval.reference_cache={out / 'reference_teacher.safetensors'}",  # the teacher is scored once, not once per run
    ]
    first, second = [], []
    for seed in c.seeds:
        start = cfg.models.teacher
        if d.guided_stage:
            name = f"guided-seed{seed}"
            first.append(
                {
                    "name": name,
                    "overrides": [
                        *common,
                        f"distill.run_name={name}",
                        f"trainer.seed={seed}",
                        f"distill.target_steps={d.teacher_steps}",
                        "distill.score_steps=[]",  # its one stage is scored (the study's step counts are the students')
                    ],
                }
            )
            start = str(out / name / f"stage00_guided_{d.teacher_steps}steps")
        from_guided = [f"trainer.seed={seed}", f"models.teacher={start}", "distill.guided_stage=false"]
        if c.population:  # populations of up to compare.population students, one process each
            for i in range(0, len(c.weightings), c.population):
                specs = list(c.weightings[i : i + c.population])
                second.append(
                    {
                        "name": population_name(specs, seed),
                        "overrides": [*common, *from_guided, "distill.population=" + json.dumps(specs)],
                        "members": [member_run_name(spec, seed) for spec in specs],
                    }
                )
            continue
        for spec in c.weightings:
            second.append(
                {
                    "name": member_run_name(spec, seed),
                    "overrides": [*common, *from_guided, *weighting_overrides(spec, seed)],
                }
            )
    return [wave for wave in (first, second) if wave]


def weighting_overrides(spec: str, seed: int) -> list[str]:
    """What makes a comparison's run the run of weighting ``spec``: its name, weighting, the
    weighting's hyper-parameters — every one, those the spec leaves out at what the name alone means
    — and its label (a population member gets the same)."""
    weighting, params = spec_weighting(spec)  # "bsa" is (1, 5) whatever the config's default
    return [
        f"distill.run_name={member_run_name(spec, seed)}",
        f"distill.weighting={weighting}",
        *(f"distill.{WEIGHTING_PARAMETERS[weighting][k]}={v}" for k, v in params.items()),
        f"distill.label={spec}",
    ]


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def run_devices(cfg: BsaConfig, env: dict[str, str] | None = None) -> list[str]:
    """The GPUs that a comparison's runs are spread over (CUDA_VISIBLE_DEVICES values), one per run:
    the visible GPUs when each run uses one GPU (``trainer.devices`` 1) and more than one is
    visible; else [] (every run sees what the command sees: CPU, one GPU, or DDP over all)."""
    env = os.environ if env is None else env
    if str(cfg.trainer.devices) != "1" or cfg.trainer.accelerator == "cpu":
        return []
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        visible = [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    else:
        import torch

        visible = [str(i) for i in range(torch.cuda.device_count())]
    return visible if len(visible) > 1 else []


def least_loaded(devices: list[str], busy: list[str]) -> str:
    """The device with the fewest runs in ``busy`` (the first such in ``devices`` order)."""
    return min(devices, key=lambda d: (busy.count(d), devices.index(d)))


def run_threads(parallel: int, runs: int, env: dict[str, str] | None = None) -> str:
    """OMP_NUM_THREADS of each run: the machine's cores shared by the runs at once (at least 1), or
    the user's own setting. Without it every run starts a thread per core, and a few dozen runs'
    spinning thread pools starve each other's launching threads (a 3 M model's step is launch-bound)."""
    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS"):
        return env["OMP_NUM_THREADS"]
    return str(max(1, (os.cpu_count() or 1) // max(1, min(parallel, runs))))


def _run_wave(
    runs: list[dict],
    files: list[str],
    overrides: list[str],
    parallel: int,
    out: Path,
    devices: list[str] | None = None,
) -> list[str]:
    """Run ``bsa.cli.distill`` for each run, ``parallel`` at a time, each on the least loaded of
    ``devices`` (if any); returns the names that failed."""
    pending, active, failed = list(runs), [], []
    (out / "logs").mkdir(parents=True, exist_ok=True)
    threads = run_threads(parallel, len(runs))
    while pending or active:
        while pending and len(active) < parallel:
            run = pending.pop(0)
            log = open(out / "logs" / f"{run['name']}.log", "a")
            argv = [sys.executable, "-m", "bsa.cli.distill", *files, *overrides, *run["overrides"]]
            env, where = {**os.environ, "OMP_NUM_THREADS": threads}, ""
            if devices:
                env["CUDA_VISIBLE_DEVICES"] = least_loaded(devices, [d for *_, d in active])
                where = f" on GPU {env['CUDA_VISIBLE_DEVICES']}"
            print(
                f"[compare] {_clock()} start {run['name']}{where}, {threads} thread(s) (log: {log.name})",
                flush=True,
            )
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            active.append((run, proc, log, env.get("CUDA_VISIBLE_DEVICES") if devices else None))
        time.sleep(1.0)
        for item in list(active):
            run, proc, log, _ = item
            if proc.poll() is not None:
                active.remove(item)
                log.close()
                status = (
                    "done"
                    if proc.returncode == 0
                    else "unfinished (stopped by distill.stop_after: run again to continue)"
                    if proc.returncode == EXIT_UNFINISHED
                    else f"FAILED (exit {proc.returncode}, see {log.name})"
                )
                print(f"[compare] {_clock()} {run['name']}: {status}", flush=True)
                if proc.returncode:
                    failed.append(run["name"])
    return failed


def run_comparison(cfg: BsaConfig, files: list[str], overrides: list[str]) -> tuple[Path, list[str]]:
    """Run every wave (each run a ``bsa distill`` process), then write results.json, results.md,
    the dashboard and the study (:func:`comparison_study`). Returns the comparison folder and the
    runs that failed (then nothing is written)."""
    from bsa.report.dashboard import build_dashboard
    from bsa.report.records import comparison_records, comparison_rows
    from bsa.report.tables import aggregate, format_differences, format_results, weighting_differences

    out = compare_dir(cfg)
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    devices = run_devices(cfg)
    for wave in planned_runs(cfg, overrides):
        failed = _run_wave(wave, files, overrides, cfg.compare.parallel, out, devices)
        if failed:
            return out, failed
    rows = comparison_rows(out)
    config = {"weightings": list(cfg.compare.weightings), "seeds": list(cfg.compare.seeds)}
    reference = "bsa" if "bsa" in cfg.compare.weightings else cfg.compare.weightings[0]
    differences = weighting_differences(comparison_records(out), reference)
    paired = [
        {"weighting": w, "steps": n, "reference": reference, "seeds": d["seeds"]}
        | {k: dict(zip(("mean", "lo", "hi"), d[k], strict=True)) for k in d if k != "seeds"}
        for (w, n), d in sorted(differences.items())
    ]
    (out / "results.json").write_text(
        json.dumps({"rows": rows, "differences": paired, "config": config}, indent=1) + "\n"
    )
    text = format_results(cfg, aggregate(rows), (time.time() - start) / 60, compare_id(cfg))
    text += "\n" + format_differences(differences, reference)
    (out / "results.md").write_text(text + "\n")
    print(text)
    study = comparison_study(out, reference, "bsa compare " + " ".join(files + overrides))
    if study:
        print(f"study: {study}")
    print(f"dashboard: {build_dashboard(out, cfg)}")  # after the study: it shows its verdicts
    return out, []


def comparison_study(out: Path, reference: str, command: str) -> Path | None:
    """The weighting study of this comparison (what ``bsa study <out>`` writes) in ``<out>/study/``:
    summary.json and summary.md — the table with where ``reference`` wins, ties or loses and the
    best point — and map.html; its path, or None (and why, printed) where no student reached the
    study's step counts."""
    from bsa.report.study import study_of_comparisons

    try:
        summary = study_of_comparisons([out], reference)
    except ValueError as e:
        print(f"no study summary: {e}")
        return None
    if not summary["steps"]:
        print(f"no study summary: no student reached {summary['not_reached']} steps")
        return None
    write_study(out / "study", summary, command, [out])
    return out / "study" / "summary.md"


def write_study(out, summary: dict, command: str, comparisons: list, **provenance) -> str:
    """A study as ``bsa study`` and ``bsa compare`` write it: ``summary``
    (:func:`bsa.report.study.study_of_comparisons`) with its ``command``, ``comparisons`` and
    ``provenance`` to ``<out>/summary.json``, its table (:func:`bsa.report.study.format_study`) to
    summary.md and its heat maps to map.html (:func:`bsa.report.dashboard.study_maps`); returns the
    table."""
    from bsa.report.dashboard import study_maps
    from bsa.report.records import write_summary
    from bsa.report.study import format_study

    return write_summary(
        out,
        summary,
        format_study,
        pages={"map.html": study_maps},
        command=command,
        comparisons=[str(x) for x in comparisons],
        **provenance,
    )
