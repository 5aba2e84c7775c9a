import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import bsa_cli

from bsa.config import BsaConfig, ConfigError, load_config, to_yaml

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads(path):
    cfg = load_config([path])
    assert isinstance(cfg, BsaConfig) and cfg.preset == path.stem


def test_overrides_apply_and_are_typed():
    cfg = load_config(
        [ROOT / "experiments/embedded-cpu.yaml"], ["distill.target_steps=50", "distill.weighting=min_snr"]
    )
    assert cfg.distill.target_steps == 50 and cfg.distill.plan.step_counts == [200, 100, 50]
    assert cfg.distill.weighting == "min_snr"
    assert "weighting: min_snr" in to_yaml(cfg)


def test_compile_switch_reads_yaml_booleans_as_modes(tmp_path):
    """YAML turns a bare ``off``/``on`` into a boolean: the switch still means what was written."""
    cases = {
        "off": None,
        "on": {"mode": None, "backend": "inductor"},
        "max-autotune": {"mode": "max-autotune"},
    }
    for written, kwargs in cases.items():
        (tmp_path / "c.yaml").write_text(f"trainer:\n  compile: {written}\n")
        got = load_config(
            [ROOT / "experiments/embedded-cpu.yaml", tmp_path / "c.yaml"]
        ).trainer.compile_kwargs()
        assert (got if kwargs is None else {k: got[k] for k in kwargs}) == kwargs, written


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["distill.target_steps=30"],
            r"distill.target_steps: target steps 30 cannot be reached by halving 200",
        ),
        (["distill.lr=-0.001"], r"distill.lr: learning rate must be positive"),
        (
            ["distill.weightin=bsa"],
            r"unknown config key 'distill.weightin' — did you mean 'distill.weighting'",
        ),
        (["distill.weighting=bsaa"], r"distill.weighting: unknown 'bsaa'"),
        (["distill.teacher_steps=abc"], r"bad value for 'distill.teacher_steps'"),
        (["distill.bsa_floor=30"], r"distill.bsa_floor/bsa_gamma"),
        (["distill.guidance_scale=0.5"], r"distill.guidance_scale"),
        (["oops"], r"not of the form key=value"),
        (["trainer.compile=fast"], r"trainer.compile: unknown 'fast'; expected one of off, default"),
        (["trainer.compile_backend=tvm"], r"trainer.compile_backend: unknown 'tvm'"),
        (["trainer.matmul_precision=tf32"], r"trainer.matmul_precision: unknown 'tf32'"),
        (["trainer.ddp_bucket_mb=0"], r"trainer.ddp_bucket_mb: must be > 0"),
        (
            ["trainer.ddp_comm_hook=int8"],
            r"trainer.ddp_comm_hook: unknown 'int8'; expected one of none, bf16",
        ),
        (
            ["trainer.low_precision_norms=true", "compare.population=4"],
            r"trainer.low_precision_norms: not with a population",
        ),
        (["eval.guidance_interval=[600,0]"], r"eval.guidance_interval: expected \[\] or \[t_lo, t_hi\]"),
        (["eval.guidance_interval=[600]"], r"eval.guidance_interval: expected"),
        (
            ["distill.score_steps=[25,3]"],
            r"distill.score_steps: \[25, 3\]: each must be a step count of the plan",
        ),
    ],
)
def test_bad_configs_fail_at_load_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config([ROOT / "experiments/embedded-cpu.yaml"], overrides)


def test_typo_in_a_yaml_file_names_the_file(tmp_path):
    bad = tmp_path / "exp.yaml"
    bad.write_text("preset: x\ndistil:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: unknown config key 'distil' — did you mean 'distill'"):
        load_config([bad])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "missing.yaml"])
    with pytest.raises(ConfigError, match="no experiment preset"):
        load_config([], [])


def run_cli(*args):
    return bsa_cli("distill", *args, timeout=120)


def test_cli_prints_the_validated_plan():
    out = run_cli("experiments/embedded-cpu.yaml", "distill.target_steps=25", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "200 → 100 → 50 → 25 (3 stages)" in out.stdout


def test_cli_rejects_unreachable_steps_with_a_clear_message():
    out = run_cli("experiments/embedded-cpu.yaml", "distill.target_steps=30")
    assert out.returncode == 2
    assert "target steps 30 cannot be reached by halving 200" in out.stderr
    assert "Traceback" not in out.stderr


def test_slurm_template_runs_a_valid_distill_command(tmp_path):
    """The sbatch template's srun line, with SLURM's variables set, is a config bsa accepts: its
    python command run with --dry-run exits 0 and prints the plan for the requested steps."""
    import os
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    script = (repo / "experiments/slurm/distill.sbatch").read_text()
    assert "#SBATCH --signal=SIGUSR1@" in script and "#SBATCH --requeue" in script
    line = re.search(r"^srun .*?(\.venv/bin/python .*?)(?<!\\)$", script, re.S | re.M).group(1)
    fake_srun = tmp_path / "srun"
    fake_srun.write_text('#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@" --dry-run\n')
    fake_srun.chmod(0o755)
    body = script.split("set -euo pipefail", 1)[1].replace(".venv/bin/python", sys.executable)
    env = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_CPUS_PER_TASK": "6",
        "STEPS": "4",
    }
    out = subprocess.run(
        ["bash", "-c", "set -euo pipefail" + body],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "200 → 100 → 50 → 25 → 13 → 7 → 4 (6 stages)" in out.stdout
    assert "4 device(s) × 2 node(s)" in out.stdout
    assert line.startswith(".venv/bin/python -m bsa.cli.distill")


@pytest.mark.parametrize("benchmark", [True, False])
def test_trainer_applies_the_float32_matmul_precision_and_cudnn_benchmark(tmp_path, benchmark):
    import torch

    from bsa.experiment.build import lightning_trainer

    cfg = load_config(
        [ROOT / "experiments/debug.yaml"],
        ["trainer.matmul_precision=high", "trainer.accelerator=cpu", f"trainer.cudnn_benchmark={benchmark}"],
    )
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = not benchmark
    try:
        lightning_trainer(cfg, max_steps=1, logger=False, default_root_dir=tmp_path)
        assert torch.get_float32_matmul_precision() == "high"
        assert torch.backends.cudnn.benchmark is benchmark
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.benchmark = before[1]


@pytest.mark.parametrize("preset", ["embedded-cpu.yaml", "embedded-gpu.yaml", "audioldm.yaml"])
def test_the_user_presets_log_to_wandb_in_auto_mode(preset):
    """`make distill` logs every stage to W&B unless told not to (only the tests' debug preset is)."""
    cfg = load_config([ROOT / "experiments" / preset])
    assert cfg.logging.wandb is True and cfg.logging.wandb_mode == "auto"
    assert load_config([ROOT / "experiments/debug.yaml"]).logging.wandb is False


def test_the_run_says_where_its_metrics_go(monkeypatch):
    from bsa.experiment import build, distill

    cfg = load_config([ROOT / "experiments/embedded-cpu.yaml"])
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")
    assert (
        "csv, wandb (offline) under runs/embedded-cpu-bsa-floor0.1-gamma20-seed0/wandb"
        in distill.describe(cfg)
    )
    monkeypatch.setattr(build, "wandb_installed", lambda: False)
    assert build.loggers_in_use(cfg) == ["csv"]
    assert "the wandb package is not installed" in distill.describe(cfg)


def test_a_key_added_later_enters_the_fingerprint_only_when_set():
    """Runs made before distill.teacher_float32 existed keep continuing (their stored fingerprint
    lacks the key); a run that sets it is told apart."""
    from bsa.experiment.runs import differences, fingerprint

    base = load_config([ROOT / "experiments/debug.yaml"])
    on = load_config([ROOT / "experiments/debug.yaml"], ["distill.teacher_float32=true"])
    before = fingerprint(base, "sha", {})
    assert "distill.teacher_float32" not in before
    assert differences(before, fingerprint(on, "sha", {})) == ["distill.teacher_float32: '(absent)' → True"]


def test_weighting_specs_of_a_comparison_parse_and_plan_their_runs():
    from bsa.config import parse_weighting
    from bsa.experiment.compare import planned_runs

    assert parse_weighting("bsa(floor=0.1, gamma=inf)") == ("bsa", {"floor": 0.1, "gamma": float("inf")})
    assert parse_weighting("min_snr") == ("min_snr", {})
    for bad, message in (
        ("bsaa", "expected one of"),
        ("constant(gamma=1)", "constant takes no hyper-parameters"),
        ("bsa(floor=x)", "not a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config([ROOT / "experiments/debug.yaml"], [f"compare.weightings=['{bad}']"])
    cfg = load_config(
        [ROOT / "experiments/debug.yaml"], ["compare.weightings=[min_snr,'bsa(floor=0.01,gamma=inf)']"]
    )
    runs = {r["name"]: r["overrides"] for r in planned_runs(cfg, [])[-1]}
    assert sorted(runs) == ["bsa-floor0.01-gammainf-seed0", "min_snr-seed0"]
    spec = runs["bsa-floor0.01-gammainf-seed0"]
    assert {"distill.weighting=bsa", "distill.bsa_floor=0.01", "distill.bsa_gamma=inf"} <= set(spec)
    assert "distill.label=bsa(floor=0.01,gamma=inf)" in spec
    run = load_config([ROOT / "experiments/debug.yaml"], spec)  # what the run itself reads back
    assert run.distill.weighting_kwargs == {"floor": 0.01, "gamma": float("inf")}
    assert run.distill.weighting_label == "bsa(floor=0.01,gamma=inf)"


def test_fresh_data_order_gives_each_stage_its_own_seed():
    from bsa.diffusion.plan import Stage
    from bsa.experiment.distill import data_seed

    same = load_config([ROOT / "experiments/debug.yaml"], ["trainer.seed=3"])
    fresh = load_config(
        [ROOT / "experiments/debug.yaml"], ["trainer.seed=3", "distill.fresh_data_order=true"]
    )
    stages = [Stage(0, 8, 8, "guided"), Stage(2, 4, 2)]
    assert [data_seed(same, s) for s in stages] == [3, 3]
    assert [data_seed(fresh, s) for s in stages] == [3, 2003]


def test_a_missing_model_folder_is_one_line_naming_it(tmp_path):
    out = bsa_cli(
        "generate",
        "experiments/embedded-cpu.yaml",
        f"eval.model={tmp_path / 'nothing'}",
        "--caption",
        "a dog barks",
        timeout=120,
    )
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"bsa: {tmp_path / 'nothing'}: no UNet here")
    assert "Traceback" not in out.stderr


def test_a_compiling_run_keeps_its_compile_cache_beside_the_runs_where_a_requeue_finds_it(
    monkeypatch, tmp_path
):
    """trainer.compile / eval.compile: torch.compile's cache under paths.output_root (torch's default is
    one machine's /tmp), unless the user set TORCHINDUCTOR_CACHE_DIR; named in the plan; what Inductor
    compiles lands there. Nothing compiled: the environment untouched."""
    import torch

    from bsa.experiment.build import lightning_trainer, use_compile_cache
    from bsa.experiment.distill import describe

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    base, root = [ROOT / "experiments/embedded-cpu.yaml"], tmp_path / "runs"
    where = [f"paths.output_root={root}", "trainer.accelerator=cpu"]
    assert use_compile_cache(load_config(base, where)) is None and "TORCHINDUCTOR_CACHE_DIR" not in os.environ
    compiled = load_config(base, [*where, "trainer.compile=default"])
    assert f"compile cache {root / '.compile-cache'}" in describe(compiled)
    lightning_trainer(compiled)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(root / ".compile-cache")
    torch.compile(lambda x: x.sin() * 3.0)(torch.ones(3))
    assert any((root / ".compile-cache").rglob("*")), "Inductor wrote nothing under the run root"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache(load_config(base, [*where, "eval.compile=default"])) == str(tmp_path / "mine")


def test_the_trainer_of_several_ranks_uses_ddp_with_the_configured_buckets_as_gradient_views():
    """`bsa distill`/`train` on more than one rank: Lightning DDP with trainer.ddp_bucket_mb buckets
    (not torch's 25 MB default), the gradients as bucket views and trainer.ddp_comm_hook's
    compression (none unless chosen); one rank: no DDP wrapper."""
    from lightning.pytorch.strategies import DDPStrategy
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    from bsa.callbacks.ddp import CommHook
    from bsa.experiment.build import lightning_trainer

    base = [ROOT / "experiments/embedded-cpu.yaml"]
    two = lightning_trainer(
        load_config(base, ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.ddp_bucket_mb=40"])
    )
    assert isinstance(two.strategy, DDPStrategy)
    assert two.strategy._ddp_kwargs == {"bucket_cap_mb": 40.0, "gradient_as_bucket_view": True}
    assert not any(isinstance(c, CommHook) for c in two.callbacks)  # none unless chosen
    for name, hook in (("bf16", "bf16_compress_hook"), ("fp16", "fp16_compress_hook")):
        chosen = [f"trainer.ddp_comm_hook={name}", "trainer.accelerator=cpu", "trainer.devices=2"]
        trainer = lightning_trainer(load_config(base, chosen))
        assert [c.hook for c in trainer.callbacks if isinstance(c, CommHook)] == [
            getattr(default_hooks, hook)
        ]
    one = lightning_trainer(load_config(base, ["trainer.accelerator=cpu"]))
    assert not isinstance(one.strategy, DDPStrategy)


def test_the_bench_only_noop_hook_is_what_ddp_registers_and_no_training_may_choose_it(tmp_path):
    """`bsa bench --comm-hook noop` (a 2-GPU step with no gradient exchange, a diagnostic) registers
    torch's debugging hook on a real DDP module; trainer.ddp_comm_hook refuses it, naming the key."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from bsa.callbacks.ddp import CommHook

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model = DistributedDataParallel(torch.nn.Linear(2, 2))
        trainer = type("T", (), {"strategy": type("S", (), {"model": model})()})()
        CommHook("noop").on_fit_start(trainer, None)
        assert model._get_ddp_logging_data()["comm_hook"] == "noop_hook"
    finally:
        dist.destroy_process_group()
    with pytest.raises(ValueError, match=r"trainer.ddp_comm_hook: unknown 'noop'"):
        load_config([ROOT / "experiments/embedded-cpu.yaml"], ["trainer.ddp_comm_hook=noop"])


def test_a_comm_hook_on_a_training_that_ddp_does_not_wrap_is_an_error_not_a_silent_float32():
    from types import SimpleNamespace

    import torch

    from bsa.callbacks.ddp import CommHook

    trainer = SimpleNamespace(strategy=SimpleNamespace(model=torch.nn.Linear(2, 2)))
    with pytest.raises(RuntimeError, match=r"trainer.ddp_comm_hook=bf16: the training is not DDP-wrapped"):
        CommHook("bf16").on_fit_start(trainer, None)


def test_a_population_names_its_own_folder_and_its_members_runs():
    """A population printed `run runs/…/<preset>-min_snr-seed0` — the folder of a run that does not
    exist (the preset's weighting); it names the population's folder and each member's run."""
    from bsa.experiment import distill

    cfg = load_config(
        [ROOT / "experiments/embedded-cpu.yaml"],
        ["distill.population=[bsa,'bsa(floor=0,gamma=5)']", "distill.guided_stage=false"],
    )
    text = distill.describe(cfg)
    assert f"run         runs/{distill.run_name(cfg)}" not in text
    assert "members in runs: bsa-seed0, bsa-floor0-gamma5-seed0" in text
    assert "runs        runs/population-seed0-" in text


def test_the_deciding_points_are_points_of_the_sweep_so_their_studies_pool():
    sweep = load_config([ROOT / "experiments/weighting-sweep.yaml"]).compare.weightings
    deciding = load_config([ROOT / "experiments/weighting-deciding.yaml"]).compare
    assert set(deciding.weightings) < set(sweep) and "bsa" in deciding.weightings
    assert deciding.population == len(deciding.weightings)  # one population: one guided stage, one bsa


def test_the_package_default_is_the_studys_best_point_and_its_records_name_it():
    """The weighting study's rule named (0.1, 20) best (2026-11-29): a run left at its defaults
    trains bsa at (0.1, 20) and its records, folder and exports name that point; the name ``bsa``
    alone keeps meaning the paper's (1, 5) — in a comparison's specs whatever the config's default,
    and in the records of earlier runs."""
    from bsa.config import parse_weighting, weighting_spec
    from bsa.experiment.compare import planned_runs
    from bsa.experiment.runs import run_name

    cfg = load_config([ROOT / "experiments/embedded-cpu.yaml"])
    assert cfg.distill.weighting_kwargs == {"floor": 0.1, "gamma": 20.0}
    assert cfg.distill.weighting_label == "bsa(floor=0.1,gamma=20)"
    assert run_name(cfg) == "embedded-cpu-bsa-floor0.1-gamma20-seed0"
    paper = load_config(
        [ROOT / "experiments/embedded-cpu.yaml"], ["distill.bsa_floor=1", "distill.bsa_gamma=5"]
    )
    assert paper.distill.weighting_label == "bsa" and run_name(paper) == "embedded-cpu-bsa-seed0"
    # a comparison's "bsa" is (1, 5); its best point by its spec
    cfg = load_config(
        [ROOT / "experiments/debug.yaml"], ["compare.weightings=[bsa,'bsa(floor=0.1,gamma=20)']"]
    )
    runs = {
        r["name"]: load_config([ROOT / "experiments/debug.yaml"], r["overrides"])
        for r in planned_runs(cfg, [])[-1]
    }
    assert runs["bsa-seed0"].distill.weighting_kwargs == {"floor": 1.0, "gamma": 5.0}
    assert runs["bsa-seed0"].distill.weighting_label == "bsa"
    assert runs["bsa-floor0.1-gamma20-seed0"].distill.weighting_kwargs == {"floor": 0.1, "gamma": 20.0}
    # every spec of the sweep is spelled as a run at its point labels itself
    import yaml

    sweep = yaml.safe_load((ROOT / "experiments/weighting-sweep.yaml").read_text())["compare"]["weightings"]
    assert [weighting_spec(*parse_weighting(spec)) for spec in sweep] == sweep
    assert (
        weighting_spec("min_snr", {"gamma": 5.0}) == "min_snr"
        and weighting_spec("constant", {}) == "constant"
    )


def test_the_guided_stage_weighting_is_a_spec_of_its_own_that_leaves_the_halvings_alone():
    """distill.guided_weighting: a spec (what it leaves out at what the name alone means, as in a
    comparison), the guided stage's only; empty: distill.weighting in every stage. A bad spec is
    refused naming the key; setting it tells the run apart (fingerprint, folder)."""
    from bsa.experiment.runs import differences, fingerprint, run_name

    cfg = load_config([ROOT / "experiments/embedded-cpu.yaml"], ["distill.guided_weighting=min_snr"])
    d = cfg.distill
    assert d.stage_weighting("guided") == ("min_snr", {"gamma": 5.0})
    assert d.stage_weighting("progressive") == ("bsa", {"floor": 0.1, "gamma": 20.0})
    assert (d.stage_weighting_label("guided"), d.stage_weighting_label("progressive")) == (
        "min_snr",
        "bsa(floor=0.1,gamma=20)",
    )
    assert run_name(cfg) == "embedded-cpu-bsa-floor0.1-gamma20-guided-min_snr-seed0"
    # "bsa" alone is the paper's (1, 5) here too, whatever the halvings' point
    paper = load_config([ROOT / "experiments/embedded-cpu.yaml"], ["distill.guided_weighting=bsa"]).distill
    assert paper.stage_weighting("guided") == ("bsa", {"floor": 1.0, "gamma": 5.0})
    spec = load_config(
        [ROOT / "experiments/embedded-cpu.yaml"], ["distill.guided_weighting='bsa(floor=0,gamma=5)'"]
    ).distill
    assert spec.stage_weighting("guided") == ("bsa", {"floor": 0.0, "gamma": 5.0})
    assert spec.stage_weighting_label("guided") == "bsa(floor=0,gamma=5)"
    # one spelling per point: the folder of a spec that gives the defaults is the name's alone
    spelled = load_config(
        [ROOT / "experiments/embedded-cpu.yaml"], ["distill.guided_weighting='min_snr(gamma=5)'"]
    )
    assert run_name(spelled) == run_name(cfg) and spelled.distill.stage_weighting_label("guided") == "min_snr"
    # unset: one weighting in every stage, the run as before
    base = load_config([ROOT / "experiments/embedded-cpu.yaml"])
    assert base.distill.stage_weighting("guided") == base.distill.stage_weighting("progressive")
    assert run_name(base) == "embedded-cpu-bsa-floor0.1-gamma20-seed0"
    assert "distill.guided_weighting" not in fingerprint(base, "sha", {})
    assert differences(fingerprint(base, "sha", {}), fingerprint(cfg, "sha", {})) == [
        "distill.guided_weighting: '(absent)' → 'min_snr'"
    ]
    # without a guided stage it has nothing to weight: the run's folder is the halvings' alone
    off = load_config(
        [ROOT / "experiments/embedded-cpu.yaml"],
        ["distill.guided_weighting=min_snr", "distill.guided_stage=false"],
    )
    assert run_name(off) == "embedded-cpu-bsa-floor0.1-gamma20-seed0"
    with pytest.raises(ConfigError, match="distill.guided_weighting.*min_snrr"):
        load_config([ROOT / "experiments/debug.yaml"], ["distill.guided_weighting=min_snrr"])
