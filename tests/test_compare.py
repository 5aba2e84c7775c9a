"""`bsa compare` end to end on the tiny world: one shared guided stage, one run per weighting,
results aggregated over the runs, and a dashboard that renders in a real browser."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _helpers import bsa_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def comparison(debug_env):
    out = bsa_cli(
        "compare",
        *[
            "experiments/debug.yaml",
            *debug_env["overrides"],
            "distill.target_steps=4",
            "distill.eval_clips=4",
            "compare.weightings=[bsa,'bsa(floor=0,gamma=5)']",  # the second is Min-SNR-5 as a BSA(floor, γ)
            "compare.parallel=2",
            "compare.audio_steps=[4]",
            "compare.id=cmp",
        ],
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return debug_env["root"] / "runs" / "compare" / "cmp"


def test_compare_runs_every_weighting_from_one_guided_teacher(comparison):
    assert sorted(p.name for p in comparison.iterdir() if (p / "eval.jsonl").is_file()) == [
        "bsa-floor0-gamma5-seed0",
        "bsa-seed0",
        "guided-seed0",
    ]
    guided = comparison / "guided-seed0" / "stage00_guided_8steps"
    for run, floor, label in (
        ("bsa-seed0", 1.0, "bsa"),
        ("bsa-floor0-gamma5-seed0", 0.0, "bsa(floor=0,gamma=5)"),
    ):
        cfg = (comparison / run / "config.yaml").read_text()
        assert f"teacher: {guided}" in cfg and "guided_stage: false" in cfg and "weighting: bsa" in cfg
        assert f"bsa_floor: {floor}" in cfg and "bsa_gamma: 5.0" in cfg  # "bsa" is (1, 5), not the default
        stage = json.loads((comparison / run / "stage01_4steps" / "bsa_stage.json").read_text())
        assert stage["weighting"] == label and stage["w_conditioned"] and stage["num_sample_steps"] == 4
        # FAD vs teacher is against the original CFG teacher, not the guided student it started from
        teacher = json.loads((comparison / run / "eval.jsonl").read_text().splitlines()[0])
        assert teacher["mode"] == "teacher" and teacher["metrics"]["nfe"] == 16
    # the same starting point and data order: the two students differ only through the weighting
    a = json.loads((comparison / "bsa-seed0" / "eval.jsonl").read_text().splitlines()[1])["metrics"]
    b = json.loads((comparison / "bsa-floor0-gamma5-seed0" / "eval.jsonl").read_text().splitlines()[1])[
        "metrics"
    ]
    assert a["fad_teacher"] != b["fad_teacher"]
    results = (comparison / "results.md").read_text()
    assert (
        "| steps | bsa | bsa(floor=0,gamma=5) |" in results
        and "| 4 |" in results
        and "Quality ratio" in results
    )
    rows = json.loads((comparison / "results.json").read_text())["rows"]
    # run, weighting, mode and seed come from each record, not from the runs' folder names
    assert {(r["mode"], r["weighting"], r["steps"]) for r in rows if r["stage"] >= 0} == {
        ("guided", "bsa(floor=0.1,gamma=20)", 8),  # the shared guided stage: the package default, named
        ("progressive", "bsa", 4),
        ("progressive", "bsa(floor=0,gamma=5)", 4),  # the spec it was given names it
    }
    assert all(r["seed"] == 0 for r in rows)
    # each weighting against bsa clip by clip (same captions and noise), with its interval
    (diff,) = json.loads((comparison / "results.json").read_text())["differences"]
    assert (diff["weighting"], diff["steps"], diff["reference"], diff["seeds"]) == (
        "bsa(floor=0,gamma=5)",
        4,
        "bsa",
        [0],
    )
    assert diff["clap"]["lo"] <= diff["clap"]["mean"] <= diff["clap"]["hi"] and diff["clap"]["mean"] != 0
    assert "Paired difference to bsa" in results


def test_a_population_comparison_trains_the_same_runs_in_one_process_and_resumes(comparison, debug_env):
    """compare.population=2: the two weightings train as one population (one process, the same
    batches and draws). Each member is a run of its own on disk — the folders, records, profiles and
    exports of the comparison above — and scores what its separate run scored, up to the float-level
    differences that Adam amplifies. Stopped inside its first stage (distill.stop_after), the same
    command resumes it: one final record per stage and member."""
    argv = [
        "experiments/debug.yaml",
        *debug_env["overrides"],
        "distill.target_steps=2",  # two progressive stages: a shared teacher, then the members' own
        "distill.eval_clips=4",
        "compare.weightings=[bsa,'bsa(floor=0,gamma=5)']",
        "compare.population=2",
        "compare.audio_steps=[2]",
        "compare.id=cmp-population",
        "logging.wandb=true",  # the population's one W&B run per stage, each member's metrics under its label
        "logging.wandb_mode=offline",
    ]
    stopped = bsa_cli("compare", *argv, "distill.stop_after=2", timeout=900)
    assert stopped.returncode == 1 and "unfinished" in stopped.stdout, stopped.stdout[-3000:]
    out = bsa_cli("compare", *argv, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = debug_env["root"] / "runs" / "compare" / "cmp-population"
    (population,) = folder.glob("population-seed0-*")
    assert (population / "checkpoints" / "stage01_4steps" / "last.ckpt").is_file()
    wandb_runs = sorted((population / "wandb").glob("offline-run-*/*.wandb"))
    assert len(wandb_runs) >= 2  # one per stage (and the stopped stage's, where it logged before stopping)
    logged = wandb_runs[-1].read_bytes()  # the last stage's
    assert b"bsa/eval/clap" in logged and b"bsa(floor=0,gamma=5)/eval/clap" in logged
    for run, floor in (("bsa-seed0", 1.0), ("bsa-floor0-gamma5-seed0", 0.0)):
        cfg = (folder / run / "config.yaml").read_text()
        assert f"bsa_floor: {floor}" in cfg and "population: []" in cfg
        records = [json.loads(line) for line in (folder / run / "eval.jsonl").read_text().splitlines()]
        assert [(r["stage"], r["final"]) for r in records] == [(-1, True), (1, True), (2, True)], run
        profiles = [json.loads(line) for line in (folder / run / "profiles.jsonl").open()]
        assert [p["stage"] for p in profiles] == [1, 2]
        # the second stage's members are copies of frozen teachers, trained all the same: their
        # gradient norms are measured (they were 0.0 at every step, seed 1 of the map, 2026-11-29)
        assert all(r["grad_norm"] > 0 for p in profiles for r in p["profile"]), run
        assert (folder / run / "stage02_2steps" / "bsa_stage.json").is_file()
        assert (folder / run / "summary.json").is_file()
        # against the same weighting trained alone (the comparison above: same guided start and seed)
        alone = [json.loads(line) for line in (comparison / run / "eval.jsonl").read_text().splitlines()]
        ours, theirs = records[1]["metrics"], alone[1]["metrics"]
        assert ours["fad_teacher"] == pytest.approx(theirs["fad_teacher"], rel=0.03), run
        assert ours["clap"] == pytest.approx(theirs["clap"], abs=0.003), run
    results = json.loads((folder / "results.json").read_text())
    assert {(r["weighting"], r["steps"]) for r in results["rows"] if r["stage"] >= 1} == {
        ("bsa", 4),
        ("bsa", 2),
        ("bsa(floor=0,gamma=5)", 4),
        ("bsa(floor=0,gamma=5)", 2),
    }


def test_a_comparison_elsewhere_starts_from_a_seeds_guided_stage_brought_in_its_resume_state(
    comparison, debug_env
):
    """The map's points of one seed can run in several sessions on machines lent for minutes:
    each seed's guided stage comes home as its resume state (weighting_study.sh, pack_resume.py)
    and, put in another comparison's folder, is that comparison's guided stage — not trained
    again — and its members start from that same student."""
    from bsa.config import load_config
    from bsa.experiment.runs import resume_state

    source = comparison / "guided-seed0"
    moved = debug_env["root"] / "runs" / "compare" / "cmp-restored" / "guided-seed0"
    for f in resume_state(load_config([source / "config.yaml"]), source):
        (moved / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / f, moved / f)
    out = bsa_cli(
        "compare",
        *[
            "experiments/debug.yaml",
            *debug_env["overrides"],
            "distill.target_steps=2",
            "distill.score_steps=[2]",  # the 4-step stage exported, not scored
            "distill.eval_clips=4",
            "compare.weightings=['bsa(floor=0.1,gamma=inf)']",
            "compare.population=1",
            "compare.id=cmp-restored",
        ],
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    guided_log = (moved.parent / "logs" / "guided-seed0.log").read_text()
    trained = re.compile(r"stage 0 \(guided, .*\): \d+ optimizer steps")
    assert trained.search((comparison / "logs" / "guided-seed0.log").read_text())  # where it trained
    assert not trained.search(guided_log), guided_log[-2000:]  # here: nothing trained again
    member = moved.parent / "bsa-floor0.1-gammainf-seed0"
    assert f"teacher: {moved / 'stage00_guided_8steps'}" in (member / "config.yaml").read_text()
    records = [json.loads(line) for line in (member / "eval.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["final"]) for r in records] == [(-1, True), (2, True)]
    (log,) = (moved.parent / "logs").glob("population-seed0-*.log")
    said = [line.strip() for line in log.read_text().splitlines() if line.strip().startswith("member ")]
    said = [re.sub(r"\d+\.\d", "…", line) for line in said]  # and how long it took, part by part
    assert said == [  # the console says what was done: the unscored stage is not "scored"
        "member bsa-floor…-gammainf-seed0: exported in … s (StagePromotion …, ErrorProfile …)",
        "member bsa-floor…-gammainf-seed0: exported and scored in … s"
        " (StagePromotion …, ErrorProfile …, StageEvaluation …)",
    ]
    # its members' error profiles measured together, once per stage end
    profiled = [
        re.sub(r"\d+\.\d", "…", line.strip())
        for line in log.read_text().splitlines()
        if "error profiles" in line
    ]
    assert profiled == ["error profiles of 1 member in … s"] * 2
    # the scoring's parts, in its record: where a member's scoring time goes
    timed = {
        k: v
        for k, v in records[-1]["metrics"].items()
        if k.startswith("seconds_") and k != "seconds_per_clip"
    }
    required = {"sampling", "features", "scores", "paired", "per_clip_scores"}
    assert {f"seconds_{part}" for part in required} <= set(timed)
    assert all(v >= 0 for v in timed.values()) and timed["seconds_sampling"] > 0


def test_a_population_stopped_among_its_members_stage_ends_finishes_only_the_others(
    comparison, debug_env, monkeypatch
):
    """A population whose stage trained to its end, then stopped while its members were exported and
    scored one by one (here: the second member's evaluation raises), finishes on the next invocation
    from its checkpoint at the last step: the second member is exported and scored, the first — done
    before — is not done again (one record each)."""
    from bsa.callbacks.evaluation import StageEvaluation
    from bsa.config import load_config
    from bsa.experiment.population import run_population

    root = debug_env["root"] / "runs" / "population-stopped"
    cfg = load_config(
        [REPO / "experiments/debug.yaml"],
        [
            *debug_env["overrides"],
            f"paths.output_root={root}",
            f"models.teacher={comparison / 'guided-seed0' / 'stage00_guided_8steps'}",
            "distill.guided_stage=false",
            "distill.target_steps=4",
            "distill.eval_clips=4",
            "distill.population=[bsa,constant]",
        ],
    )
    original = StageEvaluation.on_train_end

    def stop_at_the_second(self, trainer, module):
        if self.run_dir.name == "constant-seed0":
            raise RuntimeError("stopped among the members")
        original(self, trainer, module)

    monkeypatch.setattr(StageEvaluation, "on_train_end", stop_at_the_second)
    with pytest.raises(RuntimeError, match="among the members"):
        run_population(cfg)
    first, second = root / "bsa-seed0" / "eval.jsonl", root / "constant-seed0" / "eval.jsonl"
    assert [json.loads(line)["stage"] for line in first.read_text().splitlines()] == [-1, 1]
    assert not second.exists() or '"stage": 1' not in second.read_text()
    monkeypatch.setattr(StageEvaluation, "on_train_end", original)
    (done,) = {result.finished for _, result in run_population(cfg)}
    assert done
    for path in (first, second):
        assert [json.loads(line)["stage"] for line in path.read_text().splitlines()] == [-1, 1], path


def test_dashboard_renders_in_headless_chromium(comparison):
    page = comparison / "dashboard" / "index.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing fetched
    srcs = [s.split("'")[0] for s in text.split("src='")[1:]]
    assert len(srcs) == 2 * 4 * 3  # 4 captions × (teacher + 2 weightings) × (spectrogram + audio)
    assert all((page.parent / s).is_file() for s in srcs)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(
            "headless chromium is not installed and could not be (`make chromium` needs root and apt-get)"
        )
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    check = json.loads(dom.split('<pre id="render-check">')[1].split("</pre>")[0])
    assert check["plots"] == 12  # 7 metrics, weighting curves, 3 error profiles, loss curves
    assert check["series"] >= 7 * 2 + 2 + 3 * 2 + 2  # …, the two weightings in each error profile
    assert check["text_overlaps"] == 0, check["overlapping"]  # e.g. "teacher @ 200" over the legend
    assert check["images_ok"] == 12 and check["images_failed"] == 0
    assert check["audio_ok"] == 12 and check["audio_failed"] == 0
    # the (floor, γ) map at the study's step count reached (4): bsa (1, 5) and (0, 5), shaded
    assert check["heat_maps"] == [
        "CLAP score @ 4 steps",
        "attribute accuracy @ 4 steps",
        "FAD vs the teacher's outputs @ 4 steps",
    ]
    assert check["heat_cells"] == 3 * 2


def test_a_comparison_ends_with_its_weighting_study(comparison):
    """make compare answers the study's question itself: the summary bsa study would write, with
    where bsa wins, ties or loses and the best point beneath the table, and the heat maps."""
    from bsa.report.study import format_study, study_of_comparisons

    summary = json.loads((comparison / "study" / "summary.json").read_text())
    assert summary["reference"] == "bsa" and set(summary["steps"]["4"]) == {"bsa", "bsa(floor=0,gamma=5)"}
    assert summary["steps"] == json.loads(json.dumps(study_of_comparisons([comparison])["steps"]))
    assert summary["command"].startswith("bsa compare experiments/debug.yaml")
    text = (comparison / "study" / "summary.md").read_text()
    assert text == format_study(summary) and "\nBest" in text
    assert "<table class='heat'>" in (comparison / "study" / "map.html").read_text()
    # and its dashboard shows the verdicts and the best point (read from the study's summary)
    import html

    from bsa.report.study import format_best_point

    page = (comparison / "dashboard" / "index.html").read_text()
    assert "<h2>Where bsa wins, ties or loses</h2><table class='verdicts'>" in page
    assert html.escape(format_best_point(summary)) in page


def test_the_dashboard_maps_the_family_at_the_studys_step_counts_and_the_last():
    """A comparison through 4 steps scored at 25 and 4 (the study's two blocks in one comparison,
    2026-11-29) showed its map at 4 steps only; a comparison's map is at 25 and 4 where reached."""
    from bsa.report.dashboard import map_steps

    assert map_steps([200, 100, 50, 25, 13, 7, 4]) == [25, 4]
    assert map_steps([100, 50, 25]) == [25]
    assert map_steps([100, 50, 25, 13]) == [25, 13]
    assert map_steps([8, 4]) == [4]
    assert map_steps([16, 8]) == [8]


def test_dashboard_of_records_without_their_audio_builds_with_the_samples_marked_not_kept(
    comparison, debug_env, tmp_path
):
    """A comparison's records brought back from a device without the runs' audio (a results folder)
    still give the dashboard: the listening table says "not kept" where a sample is missing."""
    from bsa.config import load_config
    from bsa.experiment.compare import compare_dir
    from bsa.report.dashboard import build_dashboard

    cfg = load_config(
        [REPO / "experiments/debug.yaml"],
        [
            *debug_env["overrides"],
            "distill.target_steps=4",
            "compare.weightings=[bsa,'bsa(floor=0,gamma=5)']",
            "compare.audio_steps=[4]",
            "compare.id=cmp",
            f"paths.output_root={tmp_path}",
        ],
    )
    copy = compare_dir(cfg)
    shutil.copytree(comparison, copy, ignore=shutil.ignore_patterns("samples", "dashboard", "*.ckpt"))
    text = build_dashboard(copy, cfg).read_text()
    assert text.count("<td>not kept</td>") == 4 * 3 and "src='" not in text.split("<h2>Listen</h2>")[1]


def test_plot_labels_of_a_flat_series_are_distinct_and_the_reference_is_in_the_legend():
    import re

    from bsa.report.dashboard import svg_plot

    svg = svg_plot(
        [("bsa", [(1, 0.4, 0.0), (2, 0.4 + 1e-12, 0.0)])],
        "t",
        "steps",
        "acc",
        logx=True,
        hline=("teacher @ 8", 0.4),
    )
    ticks = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert len(ticks) >= 3 and len(ticks) == len(set(ticks)), ticks
    legend = re.findall(r'<text (?:class="ref-label" )?x="(\d+)" y="(\d+)">([^<]+)</text>', svg)
    assert [(x, label) for x, _, label in legend] == [(legend[0][0], "bsa"), (legend[0][0], "teacher @ 8")]
    assert int(legend[1][1]) - int(legend[0][1]) == 15  # the next legend row, not beside the line


def test_the_bsa_map_is_a_floor_by_gamma_table_shaded_by_quality():
    import re

    from bsa.report.dashboard import heat_map

    table = {
        ("bsa(floor=0,gamma=5)", 4): {"clap": (0.5, 0.01, 3)},
        ("bsa(floor=1,gamma=inf)", 4): {"clap": (0.7, 0.02, 3)},
        ("bsa(floor=1,gamma=5)", 4): {"clap": (0.6, 0.0, 3)},
        ("snr_plus_one", 4): {"clap": (0.9, 0.0, 3)},  # not on the map
    }
    html = heat_map(table, [w for w, _ in table], 4, "clap")
    assert [h for h in re.findall(r"<th>([^<]*)</th>", html) if h] == [
        "γ = 5",
        "γ = ∞",
        "floor = 0",
        "floor = 1",
    ]
    cells = re.findall(r"<td(?: style='background:rgb\((\d+),(\d+),255\)')?>([^<]*)</td>", html)
    assert [c[2] for c in cells] == ["0.500 ± 0.010", "–", "0.600 ± 0.000", "0.700 ± 0.020"]
    reds = {c[2]: int(c[0]) for c in cells if c[0]}
    assert reds["0.700 ± 0.020"] < reds["0.600 ± 0.000"] < reds["0.500 ± 0.010"]  # higher CLAP: darker
    fad = {k: {"fad_teacher": v["clap"]} for k, v in table.items()}
    reds = {
        c[1]: int(c[0])
        for c in re.findall(
            r"background:rgb\((\d+),\d+,255\)'>([^<]*)<",
            heat_map(fad, list({w for w, _ in table}), 4, "fad_teacher"),
        )
    }
    assert reds["0.500 ± 0.010"] < reds["0.700 ± 0.020"]  # lower FAD: darker
    assert heat_map(table, ["bsa(floor=0,gamma=5)"], 4, "clap") == ""
    # the named baselines sit on the map at their (floor, γ): Min-SNR-5 at (0, 5), truncated SNR at (1, ∞)
    named = {
        ("min_snr", 4): table["bsa(floor=0,gamma=5)", 4],
        ("truncated_snr", 4): table["bsa(floor=1,gamma=inf)", 4],
        ("bsa", 4): table["bsa(floor=1,gamma=5)", 4],
    }
    assert heat_map(named, [w for w, _ in named], 4, "clap") == html
    # one seed: the mean alone (no "± 0.000" as if the seeds had agreed)
    one_seed = {k: {m: (x[0], 0.0, 1) for m, x in v.items()} for k, v in table.items()}
    assert "±" not in heat_map(one_seed, list({w for w, _ in table}), 4, "clap")


def test_runs_are_spread_over_the_visible_gpus_least_loaded_first(monkeypatch, tmp_path):
    """Each run gets one GPU (CUDA_VISIBLE_DEVICES in its environment); a freed GPU takes the next."""
    from bsa.config import load_config
    from bsa.experiment import compare

    cfg = load_config([], ["preset=t", "trainer.accelerator=gpu"])
    assert compare.run_devices(cfg, {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert compare.run_devices(cfg, {"CUDA_VISIBLE_DEVICES": "1"}) == []  # one GPU: nothing to spread
    assert (
        compare.run_devices(
            load_config([], ["preset=t", "trainer.devices=2"]), {"CUDA_VISIBLE_DEVICES": "0,1"}
        )
        == []
    )
    assert (
        compare.run_devices(
            load_config([], ["preset=t", "trainer.accelerator=cpu"]), {"CUDA_VISIBLE_DEVICES": "0,1"}
        )
        == []
    )

    started, threads = [], []

    class Finished:  # a run that ends at its first poll, except the first two (three polls)
        def __init__(self, argv, stdout, stderr, env):
            started.append(env["CUDA_VISIBLE_DEVICES"])
            threads.append(env["OMP_NUM_THREADS"])
            self.returncode, self.polls = 0, 0
            self.long = len(started) <= 2

        def poll(self):
            self.polls += 1
            return None if self.long and self.polls < 3 else 0

    monkeypatch.setattr(compare.subprocess, "Popen", Finished)
    monkeypatch.setattr(compare.time, "sleep", lambda s: None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(compare.os, "cpu_count", lambda: 64)
    runs = [{"name": f"r{i}", "overrides": []} for i in range(5)]
    assert compare._run_wave(runs, [], [], 3, tmp_path, ["0", "1", "2"]) == []
    # three at once over three GPUs; the third ends first, so GPU 2 takes the next two
    assert started == ["0", "1", "2", "2", "2"]
    assert threads == ["21"] * 5  # 64 cores shared by the 3 runs at once


def test_runs_share_the_cores_unless_the_user_set_the_threads():
    from bsa.experiment.compare import run_threads

    assert run_threads(17, 17, {}) == str(max(1, (__import__("os").cpu_count() or 1) // 17))
    assert run_threads(6, 2, {}) == str(max(1, (__import__("os").cpu_count() or 1) // 2))  # 2 runs, not 6
    assert run_threads(6, 6, {"OMP_NUM_THREADS": "3"}) == "3"
