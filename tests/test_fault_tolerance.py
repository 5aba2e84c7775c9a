"""What survives what (README): kills, torn records, requeues, changed settings, divergence, bad input.

Each test here failed on the code before the fix it covers (issue "Correctness and fault tolerance").
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bsa.models.unet import load_unet

REPO = Path(__file__).resolve().parents[1]


def distill_argv(env, *extra):
    return [sys.executable, "-m", "bsa.cli.distill", "experiments/debug.yaml", *env["overrides"], *extra]


def run_distill(env, *extra):
    return subprocess.run(distill_argv(env, *extra), cwd=REPO, capture_output=True, text=True, timeout=600)


def unet_of(folder: Path) -> dict:
    return load_unet(folder / "unet").state_dict()


def assert_same_weights(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f"weights differ by up to {worst}"


def kill_when(argv, path: Path, timeout: float = 300, log: Path | None = None) -> subprocess.Popen:
    """Start ``argv``; SIGKILL it the moment ``path`` exists (polled every 5 ms). Its output goes
    to ``log`` when given."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the process ended (exit {proc.returncode}) before {path} appeared"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if log:
        out.close()
    assert proc.returncode == -signal.SIGKILL
    return proc


# -- 1. the grid travels with the exported stage ------------------------------------------------


def test_stage_grid_is_the_training_grid_and_other_step_counts_say_so():
    from bsa.diffusion import sampling_grid, step_grid
    from bsa.models.export import stage_grid

    stage = {"stage": 5, "mode": "progressive", "num_sample_steps": 4, "base_steps": 200}
    stage["timesteps"] = sampling_grid(4, 200).tolist()
    assert stage["timesteps"] == [999, 679, 359, 39] != step_grid(4).tolist()
    assert stage_grid(stage, 4).tolist() == [999, 679, 359, 39]
    with pytest.warns(UserWarning, match="distilled for 4 steps.*sampling it at 8 steps"):
        assert stage_grid(stage, 8).tolist() == sampling_grid(8, 200).tolist()
    guided = {"stage": 0, "mode": "guided", "num_sample_steps": 200, "base_steps": 200}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a guided stage is trained at every t: no warning
        assert stage_grid(guided, 25).tolist() == step_grid(25).tolist()


# -- 2. every DDP rank draws its own noise, timesteps and guidance scales -------------------------


def _draw_worker(rank: int, world: int, port: int, out: str) -> None:
    import types

    import torch.distributed as dist
    from test_distill import module

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    m = module(mode="guided", guided_student=True)
    m._trainer = types.SimpleNamespace(global_rank=dist.get_rank(), global_step=7)
    g = m._generator()  # the draws of distillation_loss, in its order
    draws = {
        "w": m._guidance(4, g),
        "eps": torch.randn(4, 8, 8, 4, generator=g),
        "t": torch.randint(0, 1000, (4,), generator=g),
    }
    torch.save(draws, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_draw_different_noise_timesteps_and_scales(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_draw_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(r0["w"], r1["w"])
    assert not torch.equal(r0["eps"], r1["eps"])
    assert not torch.equal(r0["t"], r1["t"])
    # rank 0 draws what a single process draws at that step (single-GPU runs are unchanged)
    from bsa.lit.distill import draw_seed

    g = torch.Generator().manual_seed(draw_seed(0, 7, 0))
    assert torch.equal(r0["w"], 1.0 + 4.0 * torch.rand(4, generator=g))


# -- 3. EMA and checkpoint agree: a SIGKILL mid-stage resumes to the uninterrupted student ----------


def test_sigkilled_run_resumes_to_the_uninterrupted_student(debug_env, tmp_path):
    """kill -9 mid-stage-1 (the moment the stage's first checkpoint exists), with EMA on; run the
    same command again: the students equal those of an uninterrupted run (the EMA and the weights
    of every checkpoint agree). The killed run is torch.compile'd (the "eager" backend: the
    modules wrapped and traced by dynamo, no kernels generated — aot_eager's backward tracing took
    34 s more on 2 cores; test_distill checks that compiled calls train like eager ones), the
    resumed and the straight one are not: a compiled run writes checkpoints an eager run resumes from."""
    common = ("distill.checkpoint_every=1", "distill.eval_clips=0", "distill.ema_decay=0.9")
    compiled = ("trainer.compile=default", "trainer.compile_backend=eager")
    run = debug_env["root"] / "runs" / "resumed"
    log = tmp_path / "killed.log"
    kill_when(
        distill_argv(debug_env, "distill.run_name=resumed", *common, *compiled),
        run / "checkpoints" / "stage01_4steps" / "last.ckpt",
        log=log,
    )
    assert "torch.compile default (eager)" in log.read_text()
    assert (run / "stage00_guided_8steps").is_dir() and not (run / "stage02_2steps").exists()
    again = run_distill(debug_env, "distill.run_name=resumed", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout
    assert "samples/s (foreach AdamW; " in again.stdout  # fused only on CUDA
    assert "weights_only" not in again.stderr  # checkpoints load as weights only, silently
    straight = run_distill(debug_env, "distill.run_name=straight", *common)
    assert straight.returncode == 0, straight.stderr[-3000:]
    # each stage's line says how many checkpoints it saved and what they cost the training: one a
    # step (checkpoint_every=1), the last step not written twice
    said = re.findall(
        r"^stage \d+: (\d+) steps .*; (\d+) checkpoints? \([\d.]+ s of the training's\)\)$",
        straight.stdout,
        re.M,
    )
    assert len(said) == 3 and all(steps == saves for steps, saves in said), straight.stdout[-3000:]
    for stage in ("stage01_4steps", "stage02_2steps"):
        assert_same_weights(unet_of(run / stage), unet_of(debug_env["root"] / "runs" / "straight" / stage))


# -- 4, 5, 7, 9: a run that never wedges, loses no row, refuses other settings, cleans up ----------


@pytest.fixture(scope="module")
def finished_run(debug_env):
    out = run_distill(debug_env, "distill.run_name=wedge", "distill.eval_clips=2", "eval.showcase=0")
    assert out.returncode == 0, out.stderr[-3000:]
    return debug_env["root"] / "runs" / "wedge"


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]


def test_rerun_after_kills_at_every_late_point_finishes_the_run(debug_env, finished_run):
    """The states kills late in a stage leave, all at once: stage 2 killed between its final
    checkpoint and its export (last.ckpt at step N/N, no export, no record), stage 1 killed during
    its evaluation (export, no record), a torn last line of eval.jsonl (killed mid-append), and the
    temporaries of killed writers. The rerun exports stage 2 from its checkpoint and scores it,
    scores stage 1, repairs the record file with a warning naming it, and removes the temporaries;
    it used to resume at N/N, export nothing, exit 0, and never score stage 1 again."""
    run = finished_run
    before = unet_of(run / "stage02_2steps")
    shutil.rmtree(run / "stage02_2steps")
    lines = (run / "eval.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["stage"] not in (1, 2)]
    (run / "eval.jsonl").write_text("\n".join(kept) + '\n{"stage": 2, "metrics": {"cl')  # torn
    stale = [run / "stage07_1steps.tmp", run / "checkpoints" / "stage01_4steps" / ".last.ckpt.tmp4242"]
    stale[0].mkdir()
    stale[1].write_bytes(b"half a checkpoint")
    out = run_distill(debug_env, "distill.run_name=wedge", "distill.eval_clips=2", "eval.showcase=0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "stage 2: its checkpoint is at its last step" in out.stdout
    assert_same_weights(unet_of(run / "stage02_2steps"), before, atol=0)
    assert f"{run / 'eval.jsonl'}: line" in out.stderr and "torn" in out.stderr
    assert sorted(r["stage"] for r in _records(run) if r["final"]) == [-1, 0, 1, 2]  # every line parses
    assert not any(p.exists() for p in stale), "stale temporaries are removed at the start"


def test_rerun_with_other_settings_is_refused_listing_the_keys(debug_env, finished_run):
    out = run_distill(
        debug_env, "distill.run_name=wedge", "distill.eval_clips=2", "distill.lr=0.5", "distill.batch_size=2"
    )
    assert out.returncode == 2
    assert "distill.lr: 0.0001 → 0.5" in out.stderr and "distill.batch_size: 4 → 2" in out.stderr
    assert "distill.run_name=" in out.stderr


def test_fingerprint_is_content_not_location_and_names_what_differs(tmp_path):
    """Another teacher (other weights) is refused whatever its path; the same settings pass."""
    from bsa.config import load_config
    from bsa.experiment.runs import RunMismatchError, check_or_write_fingerprint, fingerprint

    cfg = load_config([REPO / "experiments/debug.yaml"], [])
    data = {"vae": {"sha256": "v"}, "latent_shape": [8, 32, 16]}
    assert check_or_write_fingerprint(tmp_path, fingerprint(cfg, "aaa", data)) == "new"
    assert check_or_write_fingerprint(tmp_path, fingerprint(cfg, "aaa", data)) == "same"
    other = load_config([REPO / "experiments/debug.yaml"], ["distill.target_steps=1", "eval.num_clips=3"])
    assert check_or_write_fingerprint(tmp_path, fingerprint(other, "aaa", data)) == "same"  # may extend
    with pytest.raises(RunMismatchError, match=r"models.teacher \(weights sha256\): 'aaa' → 'bbb'"):
        check_or_write_fingerprint(tmp_path, fingerprint(cfg, "bbb", data))
    with pytest.raises(RunMismatchError, match=r"data \(latent cache identity\): latent_shape"):
        check_or_write_fingerprint(tmp_path, fingerprint(cfg, "aaa", {**data, "latent_shape": [8, 64, 16]}))


def test_guided_stage_of_zero_steps_is_a_config_error():
    from bsa.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"distill.guided_steps.*distill.guided_stage=false"):
        load_config([REPO / "experiments/debug.yaml"], ["distill.guided_steps=0"])
    assert load_config(
        [REPO / "experiments/debug.yaml"], ["distill.guided_steps=0", "distill.guided_stage=false"]
    )


# -- 6. SLURM requeue: the pre-emption checkpoint wins when it is newer ----------------------------


def test_resume_takes_the_newer_slurm_preemption_checkpoint(debug_env):
    common = ("distill.run_name=requeue", "distill.checkpoint_every=1", "distill.eval_clips=0")
    folder = debug_env["root"] / "runs" / "requeue" / "checkpoints" / "stage01_4steps"
    budget = run_distill(debug_env, *common, "distill.stop_after=5")  # stage 1, step 1
    assert budget.returncode == 3, budget.stderr[-3000:]  # unfinished: not counted as done
    assert "run the same command again" in budget.stdout
    older = folder / "older.bak"
    shutil.copy2(folder / "last.ckpt", older)
    assert run_distill(debug_env, *common, "distill.stop_after=2").returncode == 3  # stage 1, step 3
    os.replace(folder / "last.ckpt", folder / "hpc_ckpt_1.ckpt")  # as Lightning's SIGUSR1 handler writes it
    os.replace(older, folder / "last.ckpt")
    past = time.time() - 3600
    os.utime(folder / "last.ckpt", (past, past))
    out = run_distill(debug_env, *common)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resuming from {folder / 'hpc_ckpt_1.ckpt'}" in out.stdout
    # the stage's throughput over its whole training (the Timer's time is restored with the
    # checkpoint): it read this invocation's steps over all of it, 0 samples/s after a resume at the end
    assert "stage 1: 4 steps × 4 × 1 rank(s) in" in out.stdout, out.stdout[-2000:]
    summary = json.loads((debug_env["root"] / "runs" / "requeue" / "summary.json").read_text())
    stage1 = next(s for s in summary["stages"] if s["stage"] == 1)
    assert stage1["samples_per_s"] == pytest.approx(4 * 4 / stage1["train_seconds"], rel=1e-6)


# -- 8. make vae|teacher|evaluator: checkpointed, resumed, and the shipped folder written atomically -


def teacher_training_argv(env, out_dir: Path, runs: Path, checkpoint_every: int) -> list[str]:
    """`bsa train teacher` on the debug set: 40 steps into ``out_dir``, checkpoints under ``runs``."""
    return [
        sys.executable,
        "-m",
        "bsa.cli.train",
        "teacher",
        "experiments/debug.yaml",
        *env["overrides"],
        f"train.teacher.out={out_dir}",
        "train.teacher.steps=40",
        f"train.checkpoint_every={checkpoint_every}",
        f"paths.output_root={runs}",
    ]


def test_killed_teacher_training_resumes_and_never_leaves_a_half_written_model(debug_env):
    out_dir = debug_env["root"] / "teacher-retrained"
    argv = teacher_training_argv(debug_env, out_dir, debug_env["root"] / "train-runs", checkpoint_every=1)
    ckpt = debug_env["root"] / "train-runs" / "train-teacher" / "last.ckpt"
    kill_when(argv, ckpt)
    assert not out_dir.exists() and not out_dir.with_name(out_dir.name + ".tmp").exists()
    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout
    record = json.loads((out_dir / "training.json").read_text())
    # the curve of the killed part travelled in the checkpoint: every step is there, once
    assert [r["step"] for r in record["curve"] if r["kind"] == "train"] == list(range(1, 41))
    load_unet(out_dir)  # a complete diffusers folder
    assert not ckpt.parent.exists(), "the training checkpoints go once the model is in place"


def test_sigterm_saves_the_step_reached_and_exits_non_zero(debug_env):
    """`timeout`, a batch system's time limit or `kill` send SIGTERM, to the whole process group.
    Lightning then stops at the end of the step under way with a SystemExit whose status is 0: the
    run said it had succeeded and lost every step since its last periodic checkpoint (a vocoder
    lost 5 minutes of GPU training this way). Now the step reached is saved, the status is 143,
    and the rerun continues from there."""
    out_dir = debug_env["root"] / "teacher-sigterm"
    ckpt_dir = debug_env["root"] / "sigterm-runs" / "train-teacher"
    argv = teacher_training_argv(debug_env, out_dir, debug_env["root"] / "sigterm-runs", checkpoint_every=2)
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 300
    while not (ckpt_dir / "last.ckpt").exists():  # training is under way (its first periodic save)
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` does: the process and its data workers
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "run the same command again to continue" in stderr
    reached = int(stdout.split("SIGTERM: stopped at step ")[1].split(",")[0])
    saved = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert saved == reached >= 2
    assert not out_dir.exists()
    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    record = json.loads((out_dir / "training.json").read_text())
    assert [r["step"] for r in record["curve"] if r["kind"] == "train"] == list(range(1, 41))


# -- 10. the latent cache's identity is content, not location --------------------------------------


def test_cache_is_accepted_with_the_same_vae_at_another_path(debug_env, tmp_path):
    from bsa.config import load_config
    from bsa.data.manifest import CacheManifest
    from bsa.experiment.build import build_expected_identity

    moved = tmp_path / "moved-vae"
    shutil.copytree(debug_env["root"] / "vae", moved)
    cfg = load_config([REPO / "experiments/debug.yaml"], [*debug_env["overrides"], f"models.vae={moved}"])
    manifest = CacheManifest.read(debug_env["root"] / "cache")
    manifest.check(build_expected_identity(cfg), debug_env["root"] / "cache")  # no CacheMismatchError


# -- 11. divergence: the diverged checkpoint is set aside, never resumed with other settings --------


def test_diverged_stage_is_not_resumed_and_a_changed_lr_is_refused(debug_env):
    common = (
        "distill.run_name=diverged",
        "distill.checkpoint_every=1",
        "distill.eval_clips=0",
        "distill.guided_steps=10",
    )
    first = run_distill(debug_env, *common, "distill.lr=1e30")
    assert first.returncode == 1, first.stderr[-3000:]
    assert "diverged" in first.stderr and "set aside" in first.stderr
    ckpts = debug_env["root"] / "runs" / "diverged" / "checkpoints"
    assert not (ckpts / "stage00_guided_8steps" / "last.ckpt").exists()
    assert list(ckpts.glob("stage00_guided_8steps.diverged-*"))
    again = run_distill(debug_env, *common, "distill.lr=1e-4")
    assert again.returncode == 2 and "distill.lr: 1e+30 → 0.0001" in again.stderr
    assert not (debug_env["root"] / "runs" / "diverged" / "stage00_guided_8steps").exists()


# -- 12. nothing executable is loaded from the run folder ------------------------------------------


def test_reference_cache_round_trips_as_safetensors(tmp_path):
    from bsa.callbacks.evaluation import load_references, save_references
    from bsa.metrics.frechet import GaussianStats

    stats = GaussianStats.empty(3)
    stats.update(torch.randn(5, 3))
    path = tmp_path / "ref.safetensors"
    clips = {"latents": torch.randn(4, 2, 3), "logits.source": torch.randn(4, 5)}
    save_references(path, {"real": stats, "teacher": stats}, {"clap": 0.5, "nfe": 16}, clips)
    refs, metrics, got = load_references(path)
    assert metrics == {"clap": 0.5, "nfe": 16}
    assert got.keys() == clips.keys() and all(torch.equal(got[k], clips[k]) for k in clips)
    assert torch.equal(refs["teacher"].outer, stats.outer) and torch.equal(refs["real"].count, stats.count)
    path.write_bytes(b"\x80\x04not a safetensors file")  # e.g. an old pickle: refused, never unpickled
    with pytest.raises(ValueError, match="not a bsa reference cache"):
        load_references(path)


def test_a_reference_cache_made_under_other_facts_is_not_used(tmp_path):
    """The teacher's reference cache (eval.reference_cache) was read back whatever teacher, captions
    or vocoder had made it: a comparison folder's cache from before a change scored every student
    against the old teacher's outputs. Its identity now travels in it; any difference is stale."""
    import types

    from bsa.callbacks.evaluation import reference_identity, save_references, stale_reference_keys
    from bsa.diffusion import audioldm_schedule
    from bsa.metrics.frechet import GaussianStats
    from bsa.models.denoiser import Denoiser
    from bsa.models.vocoder import GriffinLimVocoder

    stats = GaussianStats.empty(3)
    stats.update(torch.randn(5, 3))
    from diffusers import UNet2DConditionModel

    from bsa.models.unet import audioldm_unet_config

    teacher = Denoiser(
        UNet2DConditionModel(**audioldm_unet_config("tiny", 6, 8, (8, 4))), audioldm_schedule()
    )
    captions = types.SimpleNamespace(captions=["a bell", "a dog"], seeds=[1234, 1235])
    identity = reference_identity(teacher, 200, 2.5, captions, GriffinLimVocoder())
    path = tmp_path / "ref.safetensors"
    save_references(path, {"teacher": stats}, {"clap": 0.5}, None, identity)
    assert stale_reference_keys(path, identity) == []
    with torch.no_grad():
        next(teacher.unet.parameters()).add_(1e-3)
    other_teacher = reference_identity(teacher, 200, 2.5, captions, GriffinLimVocoder())
    assert stale_reference_keys(path, other_teacher) == ["teacher (weights sha256)"]
    other_vocoder = {**identity, **{"vocoder config": {**identity["vocoder config"], "n_iter": 64}}}
    assert stale_reference_keys(path, other_vocoder) == ["vocoder config"]
    fewer = reference_identity(
        teacher, 200, 2.5, types.SimpleNamespace(captions=["a bell"], seeds=[1234]), GriffinLimVocoder()
    )
    assert "captions and seeds (sha256)" in stale_reference_keys(path, fewer)
    save_references(path, {"teacher": stats}, {"clap": 0.5})  # as every cache before identities
    assert stale_reference_keys(path, identity) == sorted(identity)
    # a trained vocoder retrained with the same settings (the shipped one, 3000 → 8000 steps) is
    # another vocoder: for the cache and for the records' protocol
    from bsa.callbacks.evaluation import waveform_protocol
    from bsa.models.vocoder import MagnitudeVocoder

    first, retrained = MagnitudeVocoder(channels=16, blocks=1), MagnitudeVocoder(channels=16, blocks=1)
    with torch.no_grad():
        retrained.out.bias.add_(0.1)
    made = reference_identity(teacher, 200, 2.5, captions, first)
    save_references(path, {"teacher": stats}, {"clap": 0.5}, None, made)
    again = reference_identity(teacher, 200, 2.5, captions, retrained)
    assert stale_reference_keys(path, again) == ["vocoder (weights sha256)"]
    assert waveform_protocol(first) != waveform_protocol(retrained)
    assert waveform_protocol(GriffinLimVocoder()) == "GriffinLimVocoder, waveform format 2"


# -- 13. caption CSVs -------------------------------------------------------------------------------


def test_caption_csv_encodings_and_start_times(tmp_path):
    from bsa.data.audiocaps import DatasetError, read_caption_csv

    header = "audiocap_id,youtube_id,start_time,caption\n"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(("\ufeff" + header + "1,abc,0,a dog barks\n").encode("utf-8"))
    rows, problems = read_caption_csv(bom)
    assert [r.caption for r in rows] == ["a dog barks"] and not problems
    latin = tmp_path / "latin.csv"
    latin.write_bytes((header + "1,abc,0,a dog barks\n2,def,0,caf\xe9 noise\n").encode("latin-1"))
    with pytest.raises(DatasetError, match=r"latin\.csv: line 3 is not UTF-8"):
        read_caption_csv(latin)
    for bad in ("nan", "inf"):
        path = tmp_path / f"{bad}.csv"
        path.write_text(header + f"1,abc,0,a dog barks\n77,def,{bad},a bell\n")
        with pytest.raises(DatasetError, match=rf"{bad}\.csv: line 3, audiocap_id 77: start_time"):
            read_caption_csv(path)


# -- 14. a training set too small for the ranks and workers fails at once ---------------------------


def test_too_small_training_set_fails_at_start_not_spins(debug_env):
    from bsa.data.datamodule import EmptyTrainingSetError, LatentDataModule

    dm = LatentDataModule(debug_env["root"] / "cache", 4, num_workers=1)
    dm._rank_world = lambda: (0, 1000)  # 1000 ranks for 48 clips
    with pytest.raises(EmptyTrainingSetError, match=r"train split has 48 usable item\(s\); 1000 rank"):
        dm.train_dataloader()


# -- 15. non-finite gradients with a finite loss ---------------------------------------------------


@pytest.mark.parametrize("fused", [False, True])  # True: the skips decided on the device (found_inf)
def test_nonfinite_gradients_with_a_finite_loss_leave_the_weights_finite(tmp_path, fused):
    import lightning.pytorch as pl
    from test_distill import batch, module
    from torch.utils.data import DataLoader

    from bsa.lit.guard import NonFiniteLossError
    from bsa.models.export import NonFiniteWeightsError, save_stage

    m = module(lr=1e-3, fused_adamw=fused)
    poisoned = {"on": False}
    weight = m.student.unet.conv_in.weight
    weight.register_hook(lambda g: g * float("nan") if poisoned["on"] else g)

    class Poison(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            poisoned["on"] = batch_idx in (1, 3, 4, 5)

    trainer = pl.Trainer(
        max_steps=8,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Poison()],
    )
    with pytest.raises(NonFiniteLossError, match="gradients were not finite"):
        trainer.fit(m, DataLoader([batch(k) for k in range(8)], batch_size=None))
    assert m._nonfinite_total == 4  # fused: read at the last step (7), the run of 3 (steps 3–5) seen there
    assert all(torch.isfinite(p).all() for p in m.student.parameters())
    with torch.no_grad():
        weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match="NaN/inf"):
        save_stage(tmp_path / "stage", m.student.unet, {}, tmp_path, "griffin-lim", {})
    assert not (tmp_path / "stage").exists()


def test_a_stage_exports_with_the_shipped_vocoder(tmp_path):
    """models.vocoder=embedded:vocoder: the export copied the spec as a path ("embedded:vocoder", no
    such folder) and failed after the stage had trained; the shipped folder is resolved, and the
    stage's vocoder loads as the same network."""
    from bsa.models.export import save_stage
    from bsa.models.vocoder import MagnitudeVocoder, load_vocoder

    unet = load_unet(REPO / "bsa/assets/teacher")
    folder = save_stage(tmp_path / "stage", unet, {}, REPO / "bsa/assets/vae", "embedded:vocoder", {})
    shipped, exported = load_vocoder("embedded:vocoder"), load_vocoder(str(folder / "vocoder"))
    assert isinstance(exported, MagnitudeVocoder)
    a, b = shipped.state_dict(), exported.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- 9. fsync before rename --------------------------------------------------------------------------


def test_exports_and_checkpoints_are_fsynced_before_their_rename(tmp_path, monkeypatch):
    import bsa.durable as durable

    synced, renamed = [], []
    real_fsync_file = durable.fsync_file
    monkeypatch.setattr(durable, "fsync_file", lambda p: (synced.append(Path(p)), real_fsync_file(p))[1])
    real_replace = os.replace
    monkeypatch.setattr(durable.os, "replace", lambda a, b: (renamed.append(Path(a)), real_replace(a, b))[1])
    tmp = tmp_path / "x.tmp"
    tmp.mkdir()
    (tmp / "weights.safetensors").write_bytes(b"1234")
    (tmp / "sub").mkdir()
    (tmp / "sub" / "config.json").write_text("{}")
    durable.replace_durably(tmp, tmp_path / "x")
    assert {p.name for p in synced} == {"weights.safetensors", "config.json"}
    f = tmp_path / "last.ckpt.tmp1"
    f.write_bytes(b"ckpt")
    durable.replace_durably(f, tmp_path / "last.ckpt")
    assert synced[-1] == f and renamed[-1] == f  # synced, then renamed


def test_a_resumed_stage_keeps_its_earlier_training_curve(tmp_path, recwarn):
    """Lightning's CSVLogger deleted metrics.csv when its folder was not empty: a stage resumed
    after a kill lost every logged step before the resume. Now the earlier rows stay, except those
    of the steps the resumed run logs again (after its checkpoint), and nothing warns."""
    from types import SimpleNamespace

    from bsa.diffusion.plan import Stage
    from bsa.experiment.distill import stage_loggers

    stage = Stage(index=1, mode="progressive", teacher_steps=8, student_steps=4)
    ctx = SimpleNamespace(run_dir=tmp_path, cfg=SimpleNamespace(logging=SimpleNamespace(wandb=False)))
    first = stage_loggers(ctx, stage)[0]
    for step in range(10):
        first.log_metrics({"train/loss": 1.0 + step}, step=step)
    first.save()
    resumed = stage_loggers(ctx, stage)[0]  # the process was killed; its checkpoint is at step 6
    for step in range(6, 8):
        resumed.log_metrics({"train/loss": 100.0 + step, "lr": 0.1}, step=step)
    resumed.save()
    with open(tmp_path / "logs" / stage.folder_name / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(8))
    assert [float(r["train/loss"]) for r in rows] == [1, 2, 3, 4, 5, 6, 106, 107]
    assert not [w for w in recwarn if "will be deleted" in str(w.message)]


def test_two_writers_of_one_cache_file_each_rename_their_own_temporary(tmp_path, monkeypatch):
    """Two commands building one latent cache (or its workers finishing together) write the same
    files. With one shared temporary name, the second writer's rename took the first one's file
    away (FileNotFoundError), or a rename published the other's half-written bytes. Here a second
    writer writes and renames the same shard between the first one's write and its rename."""
    import torch

    from bsa.data import encode

    target = tmp_path / "train" / "shard_00000.pt"
    target.parent.mkdir()
    real_save, interleaved = torch.save, []

    def save_then_the_other_writer(obj, f):
        real_save(obj, f)
        if not interleaved:
            interleaved.append(True)
            encode._atomic_save({"writer": "B"}, target)

    monkeypatch.setattr(encode.torch, "save", save_then_the_other_writer)
    encode._atomic_save({"writer": "A"}, target)  # raised FileNotFoundError with the shared name
    assert torch.load(target) == {"writer": "A"}  # the last rename wins, whole
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left

    # the manifest, identity, report and caption files take their temporaries from the same place
    from bsa.durable import temporary_path

    assert temporary_path(target) != temporary_path(target)


def test_the_real_clips_of_the_evaluation_set_are_read_only_when_needed(tmp_path, monkeypatch):
    """A comparison's runs take the real clips' statistics from its reference cache: the set must
    not read them at set-up (each of 17 runs starting at once read 1000 clips for nothing)."""
    import numpy as np
    import torch

    import bsa.audio
    from bsa.audio import write_wav
    from bsa.callbacks.evaluation import EvaluationSet

    files = []
    for k in range(2):
        files.append(tmp_path / f"clip{k}.wav")
        write_wav(files[-1], np.full(16000, 0.1 * (k + 1), dtype=np.float32), 16000)
    reads = []
    real_load = bsa.audio.load_clip
    monkeypatch.setattr(bsa.audio, "load_clip", lambda *a, **k: reads.append(a[0]) or real_load(*a, **k))
    eval_set = EvaluationSet(
        ["a", "b"], ["x", "y"], torch.zeros(2, 4), None, files, [0, 1], num_samples=16000
    )
    assert reads == []
    assert eval_set.real.shape == (2, 16000) and eval_set.real[1, 0] == pytest.approx(0.2, abs=1e-4)
    assert reads == files  # once: the second access uses what the first read
    assert EvaluationSet(["a"], ["x"], torch.zeros(1, 4), None, None, [0]).real is None


def test_power_spaced_grids_travel_with_the_stage_and_the_teacher_keeps_its_own(monkeypatch):
    """distill.grid_power: a stage samples on its own (ρ-spaced) grid at its step count and on its
    base's ρ-spaced grids at others; a pipeline that is not a stage takes ``grid_power``; the
    scorer samples students on the ρ grids and the teacher (reference and floor) on its own."""
    import types

    from test_distill import module

    from bsa.callbacks.evaluation import StageScorer
    from bsa.diffusion import sampling_grid, step_grid
    from bsa.models.export import stage_grid

    stage = {"stage": 3, "mode": "progressive", "num_sample_steps": 25, "base_steps": 200, "grid_power": 2.0}
    stage["timesteps"] = sampling_grid(25, 200, power=2.0).tolist()
    assert stage_grid(stage, 25).tolist() == stage["timesteps"] != sampling_grid(25, 200).tolist()
    with pytest.warns(UserWarning):
        assert stage_grid(stage, 50).tolist() == sampling_grid(50, 200, power=2.0).tolist()
    guided = {"stage": 0, "mode": "guided", "num_sample_steps": 200, "base_steps": 200, "grid_power": 2.0}
    assert stage_grid(guided, 200).tolist() == step_grid(200, 1000, 2.0).tolist()
    assert stage_grid(None, 25, 1000, 200, 2.0).tolist() == sampling_grid(25, 200, power=2.0).tolist()
    # the module's student steps are the thinned ρ grid
    m = module(student_steps=4, grid_power=2.0)
    assert m.step_t.tolist() == step_grid(8, 1000, 2.0)[0::2].tolist()

    # the scorer: which spacing each generation asks for
    made = []

    class Pipe:
        def __init__(self, *args, grid_power, **kw):
            made.append(grid_power)

        def release_graphs(self):
            pass

        def to(self, device):
            return self

    monkeypatch.setattr("bsa.models.pipeline.TextToAudio", Pipe)
    fake = types.SimpleNamespace(
        vae=None,
        vocoder=None,
        null=None,
        base_steps=200,
        cuda_graphs=False,
        device="cpu",
        batch_size=4,
        grid_power=2.0,
        set=types.SimpleNamespace(captions=[], real=None),
    )
    student = types.SimpleNamespace(training=False, eval=lambda: None, train=lambda mode: None)
    StageScorer.generate_latents(fake, student, 25, [])
    assert made == [2.0]

    class Asked(Exception):
        pass

    def generate_latents(denoiser, steps, indices, seed_offset=0, grid_power=None):
        raise Asked(grid_power)

    fake.references, fake.reference_cache, fake.generate_latents = {}, None, generate_latents
    fake._load_or_compute_references = lambda *a: StageScorer._load_or_compute_references(fake, *a)
    with pytest.raises(Asked) as asked:
        StageScorer.ensure_references(fake, student, 200)
    assert asked.value.args == (1.0,)


# -- a loader's workers never finalise the parent's garbage ----------------------------------------


class _Finalised:
    """Cyclic garbage whose finaliser records the process it ran in (a CUDA graph's destructor
    calls the driver: in a forked loader worker that aborts the worker, `CUDA error: initialization
    error`, and the stage with it)."""

    def __init__(self, record: Path):
        self.record, self.me = record, self

    def __del__(self):
        with open(self.record, "a") as f:
            f.write(f"{os.getpid()}\n")


class _CollectingItems(torch.utils.data.IterableDataset):
    def __iter__(self):
        import gc

        gc.collect()  # as the worker's own allocations eventually trigger
        yield torch.zeros(1)


def test_loader_workers_do_not_finalise_garbage_inherited_from_the_parent(tmp_path):
    """A population's stage-end error profile forked 16 validation workers while the previous
    stage's CUDA graphs were uncollected cyclic garbage; a worker's garbage collection ran their
    destructors and the worker aborted (device run of 2026-11-28, a weighting population FAILED).
    Garbage is collected before the fork and the workers leave everything inherited alone."""
    import gc

    from bsa.data.datamodule import GroupSignalSafeDataLoader

    record = tmp_path / "finalised.txt"
    gc.disable()  # the garbage is still there when the loader forks, as it was on the device
    try:
        _Finalised(record)  # unreachable at once, freed only by a collection
        loader = GroupSignalSafeDataLoader(_CollectingItems(), batch_size=None, num_workers=2)
        assert len(list(loader)) == 2
    finally:
        gc.enable()
    gc.collect()
    pids = {int(p) for p in record.read_text().split()}
    assert pids == {os.getpid()}, "a worker ran the parent's finaliser"


def test_runs_sharing_a_reference_cache_compute_it_once(tmp_path):
    """Three fidelity chains side by side on one GPU, or a comparison's parallel runs, reached their
    first evaluation together and each computed the teacher's reference (400 000 teacher calls) into
    the one cache. The first to arrive now computes it under a lock; the others wait and load it.
    Two real processes, the computation made slow enough to overlap."""
    import subprocess
    import sys

    cache, log = tmp_path / "reference.safetensors", tmp_path / "computed.txt"
    child = f"""
import time
from pathlib import Path
from bsa.callbacks.evaluation import StageScorer
cache, log = Path({str(cache)!r}), Path({str(log)!r})
def load_or_compute(self, teacher, steps, path):
    if path.is_file():
        return "loaded"
    time.sleep(1.5)
    with open(log, "a") as f:
        f.write("computed\\n")
    path.write_text("reference")
    return "computed"
StageScorer._load_or_compute_references = load_or_compute
scorer = object.__new__(StageScorer)
scorer.references, scorer.reference_cache = {{}}, cache
print(scorer.ensure_references(None, 200))
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    said = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert log.read_text().count("computed") == 1
    assert said == ["computed", "loaded"]


def test_a_run_resumes_on_another_machine_from_its_resume_state(debug_env):
    """A machine lent for a few minutes at a time is lost between calls and its run folders with it
    (issue "Students that keep the teacher's quality": a chain of three seeds lost twice on
    2026-11-28/29). What ``resume_state`` lists — records, fingerprint, the stages' metadata and
    the last finished stage's UNet, no checkpoints, no embeddings, no VAE/vocoder copies — is
    enough for ``bsa distill`` elsewhere to finish the run with the students an unmoved run trains.
    The run was killed while scoring its last stage (exported, no record): that stage is not part
    of the state and is trained again, to the same weights. Before, a resumed run loaded every
    finished stage's weights, and failed on the first left out."""
    from bsa.config import load_config
    from bsa.experiment.runs import resume_state

    common = ("distill.eval_clips=2", "eval.showcase=0")
    root = debug_env["root"] / "runs"
    out = run_distill(debug_env, "distill.run_name=travel", *common)
    assert out.returncode == 0, out.stderr[-3000:]
    run = root / "travel"
    lines = [line for line in (run / "eval.jsonl").read_text().splitlines() if json.loads(line)["stage"] != 2]
    (run / "eval.jsonl").write_text("\n".join(lines) + "\n")  # killed while scoring stage 2
    cfg = load_config(
        ["experiments/debug.yaml"], [*debug_env["overrides"], "distill.run_name=travel", *common]
    )
    files = resume_state(cfg, run)
    names = {f.as_posix() for f in files}
    assert {"eval.jsonl", "fingerprint.json", "stage00_guided_8steps/bsa_stage.json"} <= names
    assert "stage01_4steps/unet/diffusion_pytorch_model.safetensors" in names  # the next teacher
    assert not any(
        n.startswith(("checkpoints/", "embeddings/", "stage02_2steps", "logs/stage02")) for n in names
    )
    assert "logs/stage01_4steps/metrics.csv" in names
    assert not any(
        n.startswith("stage00_guided_8steps/unet") or "/vae/" in n or "/vocoder/" in n for n in names
    )
    size = sum((run / f).stat().st_size for f in files)
    assert size < sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) / 3
    moved = root / "moved"
    for f in files:
        (moved / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / f, moved / f)
    again = run_distill(debug_env, "distill.run_name=moved", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    trained = [
        line for line in again.stdout.splitlines() if line.startswith("stage ") and "optimizer" in line
    ]
    assert trained == ["stage 2 (progressive, 4 → 2 steps): 4 optimizer steps"], again.stdout  # stage 2 alone
    assert_same_weights(unet_of(moved / "stage02_2steps"), unet_of(run / "stage02_2steps"))
    assert sorted(r["stage"] for r in _records(moved) if r["final"]) == [-1, 0, 1, 2]


def test_travel_light_brings_a_call_carrying_a_resume_state_under_the_device_limit(tmp_path):
    """A device call that carried the text embeddings, the wheels and a run's resume state was
    refused at 80 MiB of 64 (2026-11-29). ``experiments/gpu/travel.sh light`` takes results/ out of
    the working tree and the wheels the embedded path does not import out of .whl, and refuses when
    what travels is still over; ``home`` puts everything back."""
    import subprocess

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--local", str(REPO), str(clone)], check=True)
    shutil.copy(REPO / "experiments/gpu/travel.sh", clone / "experiments/gpu/travel.sh")  # this tree's
    wheels = clone / ".whl"
    wheels.mkdir()
    for name in ("diffusers-0.42.1-py3-none-any.whl", "laion_clap-1.1.7-py3-none-any.whl"):
        (wheels / name).write_bytes(b"w" * 1000)
    (clone / ".resume").mkdir()
    (clone / ".resume" / "unet.safetensors").write_bytes(b"\0" * (2 << 20))

    def travel(how, carry=".whl .resume"):
        return subprocess.run(
            ["bash", "experiments/gpu/travel.sh", how],
            cwd=clone,
            capture_output=True,
            text=True,
            env={**os.environ, "CARRY": carry},
        )

    light = travel("light")
    assert light.returncode == 0, light.stderr
    assert not (clone / "results").exists() and (clone / "bsa" / "assets").is_dir()
    assert sorted(p.name for p in wheels.iterdir()) == ["diffusers-0.42.1-py3-none-any.whl"]
    assert "carry (.whl .resume) 2.0 MiB" in light.stdout
    (clone / ".resume" / "unet.safetensors").write_bytes(b"\0" * (64 << 20))
    over = travel("light")
    assert over.returncode != 0 and "over the device call's 64 MiB" in over.stderr
    home = travel("home")
    assert home.returncode == 0, home.stderr
    assert (clone / "results" / "fidelity" / "summary.json").is_file() and len(list(wheels.iterdir())) == 2
    assert not (clone / ".whl-real").exists()


def test_a_ddp_run_stopped_mid_stage_resumes_to_the_uninterrupted_students(debug_env):
    """Two CPU processes (gloo): a run stopped by its step budget inside stage 1 and run again ends
    with the students of one that ran through — each rank's draws and data after the resume are
    those it would have had (its checkpoint is rank 0's; the other rank resumes from the same)."""
    common = (
        "trainer.devices=2",
        "distill.checkpoint_every=1",
        "distill.eval_clips=0",
        "distill.ema_decay=0.9",
    )
    budget = run_distill(debug_env, "distill.run_name=ddp-resumed", *common, "distill.stop_after=5")
    assert budget.returncode == 3, budget.stderr[-3000:]
    again = run_distill(debug_env, "distill.run_name=ddp-resumed", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout
    straight = run_distill(debug_env, "distill.run_name=ddp-straight", *common)
    assert straight.returncode == 0, straight.stderr[-3000:]
    runs = debug_env["root"] / "runs"
    for stage in ("stage01_4steps", "stage02_2steps"):
        assert_same_weights(unet_of(runs / "ddp-resumed" / stage), unet_of(runs / "ddp-straight" / stage))


def test_a_diverging_ddp_run_stops_as_diverged_and_sets_its_checkpoints_aside(debug_env):
    """Two CPU processes (gloo): NaN losses are skipped on both ranks and three in a row stop the
    stage as on one process (it failed on the first NaN loss: Lightning refuses a skipped step
    under DDP)."""
    common = ("distill.run_name=ddp-diverged", "trainer.devices=2", "distill.checkpoint_every=1")
    out = run_distill(
        debug_env, *common, "distill.eval_clips=0", "distill.guided_steps=10", "distill.lr=1e30"
    )
    assert out.returncode == 1, out.stderr[-3000:]
    assert "diverged" in out.stderr and "set aside" in out.stderr, out.stderr[-3000:]
    assert "not supported" not in out.stderr
    ckpts = debug_env["root"] / "runs" / "ddp-diverged" / "checkpoints"
    assert not (ckpts / "stage00_guided_8steps" / "last.ckpt").exists()
    assert list(ckpts.glob("stage00_guided_8steps.diverged-*"))


@pytest.mark.parametrize("whom", ["group", "rank0"])
def test_sigterm_stops_every_ddp_rank_at_one_step_and_saves_it(debug_env, whom):
    """Two CPU processes (gloo), SIGTERM to the whole process group (`timeout`, a batch system) or
    to the launching process alone (`kill PID`): every rank stops at the end of the same step, the
    step reached is saved, the status is 143 and the rerun continues. Lightning's own handler ran a
    collective inside the handler and forwarded the signal, so the ranks' collectives fell out of
    step and the run hung (killed after 120 s)."""
    name = f"ddp-sigterm-{whom}"
    common = (
        "trainer.devices=2",
        "distill.checkpoint_every=2",
        "distill.eval_clips=0",
        "distill.guided_steps=12",
    )
    ckpt = debug_env["root"] / "runs" / name / "checkpoints" / "stage00_guided_8steps" / "last.ckpt"
    argv = distill_argv(debug_env, f"distill.run_name={name}", *common)
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 300
    while not ckpt.exists():  # training is under way (its first periodic save)
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.005)
    if whom == "group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("the DDP run hung after SIGTERM") from None
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    reached = int(stdout.split("SIGTERM: stopped at step ")[1].split(",")[0])
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == reached >= 2
    again = run_distill(debug_env, f"distill.run_name={name}", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {ckpt}" in again.stdout


SIGNAL_AT_STEP = """
import os, signal, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
steps = {"n": 0}
def signal_after_the_update(optimizer, args, kwargs):  # inside the optimizer step, as a signal may land
    steps["n"] += 1
    if steps["n"] == int(os.environ["SIGNAL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGUSR1)
register_optimizer_step_post_hook(signal_after_the_update)
from bsa.cli.distill import main
sys.exit(main(sys.argv[1:]))
"""


def slurm_env(tmp_path: Path) -> dict:
    """A one-task SLURM job's environment, with a fake ``scontrol`` that records its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.log\n')
    (bindir / "scontrol").chmod(0o755)
    return dict(
        os.environ,
        PATH=f"{bindir}:{os.environ['PATH']}",
        SLURM_NTASKS="1",
        SLURM_NTASKS_PER_NODE="1",
        SLURM_NNODES="1",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
        SLURM_JOB_NAME="bsa-test",
        SLURM_JOB_ID="4242",
        SLURM_NODELIST="127.0.0.1",
    )


def test_a_slurm_preemption_saves_at_a_step_boundary_and_requeues(debug_env, tmp_path):
    """SLURM's pre-emption warning (`--signal=SIGUSR1@90`) landing inside an optimizer step — after
    the weights' update, before the step is counted and the EMA follows it — then the job killed
    once requeued: the requeued job ends with the students of an uninterrupted run. Lightning's
    handler saved its checkpoint inside the signal handler, a state no run passes through (the
    update applied, the step not counted: the resumed run applied it twice)."""
    common = ("distill.checkpoint_every=1000", "distill.eval_clips=0", "distill.ema_decay=0.9")
    common = (*common, "distill.guided_steps=200")
    env = dict(slurm_env(tmp_path), SIGNAL_AT_STEP="5")
    driver = tmp_path / "signal_at_step.py"
    driver.write_text(SIGNAL_AT_STEP)
    argv = [sys.executable, str(driver), *distill_argv(debug_env, "distill.run_name=preempted", *common)[3:]]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.time() + 300
    while not (tmp_path / "scontrol.log").exists():  # until the job asks to be requeued
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.005)
    proc.kill()  # SLURM ends the requeued job
    proc.communicate()
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    again = subprocess.run(
        distill_argv(debug_env, "distill.run_name=preempted", *common),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=slurm_env(tmp_path),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout
    straight = run_distill(debug_env, "distill.run_name=not-preempted", *common)
    assert straight.returncode == 0, straight.stderr[-3000:]
    runs = debug_env["root"] / "runs"
    for stage in ("stage00_guided_8steps", "stage01_4steps", "stage02_2steps"):
        assert_same_weights(unet_of(runs / "preempted" / stage), unet_of(runs / "not-preempted" / stage))


def test_a_requeue_without_scontrol_keeps_training(tmp_path, monkeypatch, capsys):
    """Where ``scontrol`` cannot be run, the requeue says so and the training goes on (its step
    saved): a missing command must not end the job that SLURM was about to stop anyway."""
    from types import SimpleNamespace

    from bsa.callbacks import signals

    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    trainer = SimpleNamespace(
        callbacks=[], strategy=SimpleNamespace(barrier=lambda name: None), is_global_zero=True, global_step=9
    )
    signals.StepEndSignals(sigterm=False)._save_and_requeue(trainer)
    assert "SLURM: saved step 9; requeuing job 77 failed:" in capsys.readouterr().out
