import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from _helpers import bsa_cli
from diffusers import UNet2DConditionModel

from bsa.callbacks.evaluation import REFERENCE_FORMAT
from bsa.config import load_config
from bsa.diffusion import (
    WEIGHTINGS,
    audioldm_schedule,
    distillation_target,
    next_timestep,
    step_grid,
    teacher_midpoint,
)
from bsa.lit.distill import DistillationModule
from bsa.lit.guard import NonFiniteLossError
from bsa.models.denoiser import Denoiser
from bsa.models.unet import audioldm_unet_config, load_unet, with_guidance_input

REPO = Path(__file__).resolve().parents[1]
SCHEDULE = audioldm_schedule()


def tiny_denoiser(seed=0, guided=False):
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**audioldm_unet_config("tiny", 6, 8, (8, 4)))
    return Denoiser(with_guidance_input(unet) if guided else unet, SCHEDULE)


def module(mode="progressive", weighting="bsa", student_steps=4, guided_student=False, **kw):
    teacher = tiny_denoiser(0)
    student = Denoiser(
        with_guidance_input(teacher.unet)
        if guided_student
        else UNet2DConditionModel.from_config(teacher.unet.config),
        SCHEDULE,
    )
    if not guided_student:
        student.unet.load_state_dict(teacher.unet.state_dict())
    return DistillationModule(
        teacher, student, torch.zeros(6), mode=mode, student_steps=student_steps, weighting=weighting, **kw
    )


def batch(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    return {"latents": torch.randn(n, 8, 8, 4, generator=g), "text_emb": torch.randn(n, 6, generator=g)}


@pytest.mark.parametrize("mode, guided", [("progressive", False), ("guided", True), ("progressive", True)])
def test_training_steps_decrease_the_loss_on_a_fixed_batch(mode, guided):
    m = module(mode=mode, guided_student=guided, lr=3e-3)
    b = batch()
    opt = torch.optim.Adam(m.student.parameters(), lr=3e-3)
    first = None
    for _ in range(30):  # global_step stays 0: the same t, ε and w every step
        loss, _ = m.distillation_loss(b["latents"], b["text_emb"])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first, (first, loss.item())


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_each_weighting_weights_the_x_space_error(name):
    m = module(weighting=name)
    b = batch(1)
    loss, _ = m.distillation_loss(b["latents"], b["text_emb"])
    # the same draw by hand
    g = m._generator()
    eps = torch.randn(b["latents"].shape, generator=g)
    grid = step_grid(4)
    i = torch.randint(0, 4, (4,), generator=g)
    t, t_mid, s = grid[i], teacher_midpoint(grid, i), next_timestep(grid, i)
    a, sg = (v.float().view(-1, 1, 1, 1) for v in SCHEDULE.alpha_sigma(t))
    z = a * b["latents"] + sg * eps
    null = torch.zeros(6)

    def teacher(zz, tt):
        return m.teacher(
            torch.cat([zz, zz]),
            torch.cat([tt, tt]),
            torch.cat([b["text_emb"], null.expand(4, 6)]),
        ).chunk(2)

    from bsa.diffusion import guided_prediction

    target = distillation_target(
        lambda zz, tt: guided_prediction(*teacher(zz, tt), 2.5), z, t, t_mid, s, SCHEDULE
    )
    both = m.student(torch.cat([z, z]), torch.cat([t, t]), torch.cat([b["text_emb"], null.expand(4, 6)]))
    xs = guided_prediction(*both.chunk(2), 2.5)
    w = WEIGHTINGS[name](SCHEDULE.snr(t).float())
    expected = (w * (xs - target).pow(2).flatten(1).mean(1)).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)


def test_weighting_is_selected_by_config_key():
    for name in sorted(WEIGHTINGS):
        assert (
            load_config([REPO / "experiments/debug.yaml"], [f"distill.weighting={name}"]).distill.weighting
            == name
        )


def test_export_teacher_copies_without_aliasing():
    m = module(ema_decay=0.9)
    exported = m.export_teacher()
    for (n1, p1), (n2, p2) in zip(m.ema.module.named_parameters(), exported.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2) and p1.data_ptr() != p2.data_ptr()
        assert not p2.requires_grad
    with torch.no_grad():
        next(m.student.parameters()).add_(1.0)
        next(m.ema.module.parameters()).add_(1.0)
    assert not torch.equal(next(m.ema.module.parameters()), next(exported.parameters()))
    assert not exported.training


def quiet_trainer(**kwargs) -> pl.Trainer:
    """A Lightning trainer for a test's few steps: no logger, checkpointing, progress bar or summary."""
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_teacher_stays_frozen_and_in_eval_mode_through_fit_with_validation():
    m = module()
    data = [batch(k) for k in range(4)]
    trainer = quiet_trainer(
        max_steps=3,
        accelerator="cpu",
        val_check_interval=2,
        limit_val_batches=1,
        num_sanity_val_steps=1,
    )
    before = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    from torch.utils.data import DataLoader

    trainer.fit(m, DataLoader(data, batch_size=None), DataLoader(data[:1], batch_size=None))
    assert not m.teacher.training and all(not p.requires_grad for p in m.teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.teacher.state_dict().items())
    assert m.student.training


def test_fused_adamw_is_clipped_like_the_foreach_one_under_bf16_mixed():
    """Lightning refuses to clip a fused optimizer under mixed precision; without a gradient scaler
    (bf16) the module clips it itself: fused + clipping ends where foreach + clipping does, and
    clipping does change the result here (the gradient norm exceeds the clip value)."""
    from torch.utils.data import DataLoader

    data = [batch(k, n=8) for k in range(3)]

    def fit(fused: bool, clip: float | None):
        torch.manual_seed(0)
        m = module(fused_adamw=fused, lr=1e-2)
        quiet_trainer(max_steps=3, accelerator="cpu", precision="bf16-mixed", gradient_clip_val=clip).fit(
            m, DataLoader(data, batch_size=None)
        )
        opt = m.trainer.optimizers[0]
        assert bool(opt.defaults.get("fused")) == fused
        return torch.cat([p.detach().flatten() for p in m.student.parameters()])

    foreach_clipped, fused_clipped, fused_unclipped = fit(False, 0.1), fit(True, 0.1), fit(True, None)
    torch.testing.assert_close(fused_clipped, foreach_clipped, rtol=1e-4, atol=1e-5)
    assert (fused_unclipped - foreach_clipped).abs().max() > 1e-3


@pytest.mark.parametrize(
    "check_every, accelerator",
    [
        (None, "cpu"),  # AdamW unfused: the host decides each step
        (1, "cpu"),
        (4, "cpu"),
        pytest.param(
            4,
            "gpu",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")],
        ),
    ],
)
def test_nonfinite_losses_are_skipped_then_stop_the_run(tmp_path, check_every, accelerator, monkeypatch):
    """Skipped, counted, stopped after three in a row — by the host each step, or with a fused AdamW
    on the device (``found_inf``), read every ``check_every`` steps: the same weights, counts and
    error, and then the guard's own code reads the device once per read, not twice a step."""
    from torch.utils.data import DataLoader

    import bsa.lit.guard as guard
    from bsa.callbacks.checkpoint import AtomicLastCheckpoint

    reads = {"host": 0, "device": 0}
    agree = guard._all_ranks_agree
    monkeypatch.setattr(
        guard, "_all_ranks_agree", lambda *a: reads.__setitem__("host", reads["host"] + 1) or agree(*a)
    )
    read_nonfinite = guard.NonFiniteGuard.read_nonfinite

    def counted(self, *a, **k):
        reads["device"] += 1
        return read_nonfinite(self, *a, **k)

    monkeypatch.setattr(guard.NonFiniteGuard, "read_nonfinite", counted)
    m = module(fused_adamw=check_every is not None)
    if check_every:
        m.nonfinite_check_every = check_every
    good, bad = batch(0), batch(1)
    bad["latents"][0, 0, 0, 0] = float("nan")
    ckpt = AtomicLastCheckpoint(tmp_path, every_n_steps=1)
    trainer = quiet_trainer(max_steps=20, accelerator=accelerator, devices=1, callbacks=[ckpt])
    with pytest.raises(NonFiniteLossError, match="for 3 steps in a row"):
        trainer.fit(m, DataLoader([good, good, bad, good, bad, bad, bad, good], batch_size=None))
    assert m._nonfinite_total == 4
    saved = torch.load(ckpt.path, weights_only=False)
    adam_updates = {int(st["step"]) for st in saved["optimizer_states"][0]["state"].values()}
    assert adam_updates == {3}, "only the three good batches updated the weights"
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())
    assert all(
        torch.isfinite(v).all() for st in saved["optimizer_states"][0]["state"].values() for v in st.values()
    )
    if check_every is None:
        assert reads == {
            "host": 10,
            "device": 0,
        }  # steps 0–6: the loss each step, the gradients of 3 good ones
    else:  # read every check_every steps, the error at the first read after the third bad step in a
        # row: at 1 in step 6 (7 reads), at 4 in step 7 (after steps 3 and 7: 2 reads)
        assert reads == {"host": 0, "device": {1: 7, 4: 2}[check_every]}


def _fit_with_checkpoints(tmp_path, callbacks, steps=6, accelerator="cpu"):
    from torch.utils.data import DataLoader

    m = module(lr=1e-2)
    trainer = quiet_trainer(max_steps=steps, accelerator=accelerator, devices=1, callbacks=callbacks)
    trainer.fit(m, DataLoader([batch(i) for i in range(steps)], batch_size=None))
    return m


@pytest.mark.parametrize(
    "accelerator",
    [
        "cpu",
        pytest.param(
            "gpu",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")],
        ),
    ],
)
def test_checkpoints_are_written_beside_the_training_each_of_its_own_step(tmp_path, monkeypatch, accelerator):
    """The writer runs in another thread, while the next steps train (each write held up here until
    two more steps have changed the weights), yet each file holds the weights of the step it was
    saved at; the run's end waits for the last write."""
    import threading

    from lightning_utilities.core.apply_func import apply_to_collection

    from bsa.callbacks.checkpoint import AtomicLastCheckpoint, DurableCheckpointIO

    main, written, at_step = threading.get_ident(), [], {}
    trained = {step: threading.Event() for step in range(1, 7)}
    save = DurableCheckpointIO.save_checkpoint

    def held_up(self, checkpoint, path, storage_options=None):
        # the writer gets the state on the host: no CUDA call in its thread, where a capture in
        # the main thread (a stage's first steps, a scoring's sampling) forbids them
        tensors = []
        apply_to_collection(checkpoint, torch.Tensor, tensors.append)
        assert tensors and not any(t.is_cuda for t in tensors)
        step = checkpoint["global_step"]
        if step < 6:  # until two more steps have trained (the last waits for none)
            assert trained[step + 2].wait(timeout=20), "the training waited for the checkpoint's write"
        save(self, checkpoint, path, storage_options)
        written.append((threading.get_ident(), torch.load(path, map_location="cpu", weights_only=False)))

    class Weights(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            at_step[trainer.global_step] = {
                k: v.to("cpu", copy=True) for k, v in pl_module.student.state_dict().items()
            }
            trained[trainer.global_step].set()

    monkeypatch.setattr(DurableCheckpointIO, "save_checkpoint", held_up)
    ckpt = AtomicLastCheckpoint(tmp_path, every_n_steps=2)
    _fit_with_checkpoints(tmp_path, [Weights(), ckpt], accelerator=accelerator)
    assert [c["global_step"] for _, c in written] == [2, 4, 6]  # every 2 steps; the end's step was saved
    assert all(thread != main for thread, _ in written)
    for _, c in written:
        weights = {k[len("student.") :]: v for k, v in c["state_dict"].items() if k.startswith("student.")}
        mine = at_step[c["global_step"]]
        assert weights.keys() == mine.keys() and all(torch.equal(weights[k], mine[k]) for k in mine)
    assert torch.load(ckpt.path, map_location="cpu", weights_only=False)["global_step"] == 6
    assert not [p for p in tmp_path.iterdir() if p.name != "last.ckpt"], "no temporary left"


def test_a_preemption_checkpoint_is_on_disk_when_its_save_returns(tmp_path, monkeypatch):
    """Lightning's SLURM handler saves ``hpc_ckpt_<n>.ckpt`` and then requeues the job, which ends
    it: that save (any save but the callback's own ``last.ckpt``) is written in line, after the
    queued periodic writes, so it is the newest file on disk the moment the call returns."""
    import threading

    from bsa.callbacks.checkpoint import AtomicLastCheckpoint, DurableCheckpointIO

    release, order = threading.Event(), []
    save = DurableCheckpointIO.save_checkpoint

    def slow_last(self, checkpoint, path, storage_options=None):
        if Path(path).name == "last.ckpt":
            assert release.wait(timeout=20)
        save(self, checkpoint, path, storage_options)
        order.append(Path(path).name)

    class Preempted(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                release.set()  # the periodic write of step 2 may finish now, not before
                trainer.save_checkpoint(tmp_path / "hpc_ckpt_1.ckpt")  # as the SIGUSR1 handler does
                assert order == ["last.ckpt", "hpc_ckpt_1.ckpt"], order
                assert torch.load(tmp_path / "hpc_ckpt_1.ckpt", weights_only=False)["global_step"] == 3

    monkeypatch.setattr(DurableCheckpointIO, "save_checkpoint", slow_last)
    ckpt = AtomicLastCheckpoint(tmp_path, every_n_steps=2)
    _fit_with_checkpoints(tmp_path, [ckpt, Preempted()], steps=4)
    assert ckpt.resume_path() == ckpt.path  # the end's last.ckpt (step 4) is newer again
    assert torch.load(ckpt.path, weights_only=False)["global_step"] == 4


@pytest.mark.parametrize("steps, saved", [(5, [2, 4, 5]), (6, [2, 4, 6])])
def test_the_training_end_saves_only_a_step_not_saved_yet(tmp_path, monkeypatch, steps, saved):
    from bsa.callbacks.checkpoint import AtomicLastCheckpoint, DurableCheckpointIO

    written = []
    save = DurableCheckpointIO.save_checkpoint

    def recorded(self, checkpoint, path, storage_options=None):
        written.append(checkpoint["global_step"])
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(DurableCheckpointIO, "save_checkpoint", recorded)
    ckpt = AtomicLastCheckpoint(tmp_path, every_n_steps=2)
    _fit_with_checkpoints(tmp_path, [ckpt], steps=steps)
    assert written == saved
    assert torch.load(ckpt.path, weights_only=False)["global_step"] == steps


def test_a_failed_checkpoint_write_fails_the_run(tmp_path, monkeypatch):
    from bsa.callbacks.checkpoint import AtomicLastCheckpoint, DurableCheckpointIO

    def full_disk(self, checkpoint, path, storage_options=None):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(DurableCheckpointIO, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        _fit_with_checkpoints(tmp_path, [AtomicLastCheckpoint(tmp_path, every_n_steps=2)])


def run_distill(env, *extra):
    return bsa_cli("distill", "experiments/debug.yaml", *env["overrides"], "distill.eval_clips=4", *extra)


def test_two_stage_run_through_the_cli(debug_env):
    out = run_distill(
        debug_env,
        "distill.run_name=plain",
        "eval.every_n_steps=2",
        "logging.wandb=true",  # on by default; the debug preset turns it off for the other tests
        "logging.wandb_mode=offline",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = debug_env["root"] / "runs" / "plain"
    import json

    # one bar per stage: the stage of all, its optimizer steps of their total (not "Epoch 0/-2")
    assert "stage 2/2 (4 → 2 steps)" in out.stdout and "4/4 [" in out.stdout
    # where the set-up's seconds went, in the order they came
    assert re.search(
        r"^set-up +[\d.]+ s \(data module [\d.]+ s, teacher [\d.]+ s, fingerprint and folder [\d.]+ s, "
        r"scorer [\d.]+ s\)$",
        out.stdout,
        re.M,
    ), out.stdout[:2000]
    assert "Epoch" not in out.stdout and "v_num" not in out.stdout
    # no advertisement, no warning about the frozen teacher being in eval mode (it is, on purpose)
    assert "Tip:" not in out.stdout + out.stderr and "in eval mode" not in out.stderr
    # nor anything else a user cannot act on: hardware chatter, library deprecations, W&B notices
    for noise in ("GPU available", "LOCAL_RANK", "Trainer.fit", "deprecated", "WARNING", "Loading weights"):
        assert noise not in out.stdout + out.stderr, (noise, out.stderr[-2000:])

    import soundfile as sf

    # the evaluation callback: teacher once, every stage at its end and every 2 steps
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["global_step"], r["final"]) for r in records] == [
        (-1, 0, True),
        (0, 2, False),
        (0, 4, True),
        (1, 2, False),
        (1, 4, True),
        (2, 2, False),
        (2, 4, True),
    ]
    assert [r["metrics"]["nfe"] for r in records if r["final"]] == [16, 8, 4, 2]  # CFG teacher: 2 calls/step
    for r in records:
        assert {"fad_real", "fad_teacher", "clap", "is", "acc_mean", "seconds_per_clip"} <= set(r["metrics"])
        # the teacher against itself with other noise: the floor, and every row's FAD vs teacher over it
        assert r["metrics"]["fad_teacher_floor"] > 0
        assert r["metrics"]["fad_teacher_ratio"] == pytest.approx(
            r["metrics"]["fad_teacher"] / r["metrics"]["fad_teacher_floor"]
        )
    for r in records[1:]:  # every student evaluation is paired with the teacher's clips, with intervals
        m = r["metrics"]
        for k in ("latent_rmse", "mel_l1", "embedding_cosine", "attribute_agreement", "clap_difference"):
            assert m[f"paired_{k}_lo"] <= m[f"paired_{k}"] <= m[f"paired_{k}_hi"], k
        assert m["paired_latent_rmse"] > 0
        # per-clip scores kept for paired comparisons between runs; their means are the set's
        assert r["per_clip"]["clap"] == pytest.approx(
            [pytest.approx(x, abs=1e-6) for x in r["per_clip"]["clap"]]
        )
        assert sum(r["per_clip"]["clap"]) / 4 == pytest.approx(m["clap"], abs=1e-5)
        assert sum(r["per_clip"]["acc_mean"]) / 4 == pytest.approx(m["acc_mean"], abs=1e-9)
        # the teacher's record keeps its own per-clip scores: the paired differences are clip by clip
        for key, paired in (("clap", "paired_clap_difference"), ("acc_mean", "paired_acc_difference")):
            diffs = [x - y for x, y in zip(r["per_clip"][key], records[0]["per_clip"][key], strict=True)]
            assert sum(diffs) / 4 == pytest.approx(m[paired], abs=1e-5), key
        assert r["protocol"]["num_clips"] == 4 and r["protocol"]["fad_backbone"].startswith("embedded")
    # every record keeps each clip's noise floor, and the silence floor of the clips captioned "in
    # silence" (teacher and students: where a student's quiet comes from is a paired question)
    import statistics

    with open(debug_env["root"] / "data" / "test.csv") as f:
        captions = [row["caption"] for row in csv.DictReader(f)][:4]
    quiet = [i for i, c in enumerate(captions) if "in silence" in c]
    assert quiet, captions
    for r in records:
        floors, level = r["per_clip"]["noise_floor_db"], r["per_clip"]["level_db"]
        # (the tiny world's untrained vocoder is not bounded to ±1: no sign to assert)
        assert len(floors) == len(level) == 4 and all(math.isfinite(v) and v >= -200 for v in floors + level)
        assert r["metrics"]["silence_floor_dbfs"] == pytest.approx(
            statistics.median_low(floors[i] for i in quiet), abs=1e-5
        )
        assert r["protocol"]["waveform"].endswith(f"waveform format {REFERENCE_FORMAT}")
        assert len(r["samples"]) == 4
        for sample in r["samples"]:
            info = sf.info(str(run / sample["audio"]))
            assert info.format == "OGG" and info.samplerate == 16000 and info.frames == 20480
            assert (run / sample["spectrogram"]).read_bytes()[:4] == b"\x89PNG"
    assert records[0]["metrics"]["fad_teacher"] == pytest.approx(0.0, abs=1e-6)  # the teacher against itself
    # final records keep their clips' embeddings (paired FAD differences between runs): the
    # teacher's, and each stage's, whose Fréchet distance to the teacher's is the record's FAD
    from safetensors.torch import load_file

    from bsa.metrics.frechet import embedding_frechet

    assert [r.get("embedding_file") is not None for r in records] == [r["final"] for r in records]
    teacher_emb = load_file(str(run / records[0]["embedding_file"]))["embedding"]
    assert teacher_emb.shape[0] == 4
    for r in records[1:]:
        if r["final"]:
            emb = load_file(str(run / r["embedding_file"]))["embedding"]
            assert embedding_frechet(emb, teacher_emb) == pytest.approx(r["metrics"]["fad_teacher"], rel=1e-4)
    from bsa.cli.fidelity import main as fidelity_main  # the fidelity summary reads these records

    assert fidelity_main([str(run), "--out", str(run / "fidelity")]) == 0
    fidelity = json.loads((run / "fidelity" / "summary.json").read_text())
    assert list(fidelity["steps"]) == ["8 guided", "4", "2"]
    assert fidelity["steps"]["4"]["clap_delta"]["mean"] == pytest.approx(
        records[4]["metrics"]["paired_clap_difference"], abs=1e-5
    )
    assert "fad_vs_teacher" not in fidelity["steps"]["4"] or fidelity["steps"]["4"]["fad_vs_teacher"] is None
    assert fidelity["fad_note"]  # 4 clips, a 256-d embedding: no FAD interval, and it says so
    assert all(r["metrics"]["fad_teacher"] > 1e-4 for r in records[1:])
    # the CSV logger has the same numbers at the same steps
    csv_rows = (run / "logs" / "stage01_4steps" / "metrics.csv").read_text().splitlines()
    header = csv_rows[0].split(",")
    clap = [row.split(",")[header.index("eval/clap")] for row in csv_rows[1:]]
    assert [float(c) for c in clap if c] == pytest.approx(
        [r["metrics"]["clap"] for r in records if r["stage"] == 1]
    )
    # one offline W&B run per stage, each with its table of captions, audio and spectrograms
    wandb_runs = sorted((run / "wandb").glob("offline-run-*"))  # under the run folder
    assert len(wandb_runs) == 3
    tables = [len(list(w.glob("files/media/table/eval/samples_*.table.json"))) for w in wandb_runs]
    assert tables == [3, 2, 2]  # the teacher's (first stage only), mid-stage and end of stage
    for w in wandb_runs:
        (record,) = w.glob("run-*.wandb")
        # the run's record log (protobuf; wandb ≥ 0.2x has no Python reader): the stage's metric keys
        # are logged as history items, the stage plan is in its config
        data = record.read_bytes()
        for key in (b"eval/fad_real", b"eval/clap", b"eval/is", b"eval/fad_teacher", b"train/loss", b"plan"):
            assert key in data, (w.name, key)

    stages = {
        p.name: json.loads((p / "bsa_stage.json").read_text()) for p in run.glob("stage*") if p.is_dir()
    }
    assert sorted(stages) == ["stage00_guided_8steps", "stage01_4steps", "stage02_2steps"]
    assert [stages[k]["num_sample_steps"] for k in sorted(stages)] == [8, 4, 2]
    assert all(stages[k]["w_conditioned"] for k in stages)
    for k in stages:  # each stage loads from its folder alone
        assert load_unet(run / k / "unet").config.time_cond_proj_dim == 256
        assert (run / k / "vae" / "config.json").is_file() and (
            run / k / "scheduler" / "scheduler_config.json"
        ).is_file()
    # the error per noise level of each stage's final student, on the same latents and noise
    profiles = [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]
    assert [(p["stage"], p["steps"], len(p["profile"])) for p in profiles] == [
        (0, 8, 25),
        (1, 4, 4),
        (2, 2, 2),
    ]
    for p in profiles:
        rows = p["profile"]
        assert sum(r["share"] for r in rows) == pytest.approx(1.0)
        assert all(r["eps_mse"] == pytest.approx(r["snr"] * r["x_mse"]) and r["x_mse"] > 0 for r in rows)
        assert all(r["weighted"] == pytest.approx(r["weight"] * r["x_mse"]) for r in rows)
        if p["mode"] == "progressive":  # one row per student step, on the stage's own grid
            assert [r["t"] for r in rows] == stages[p["stage_name"]]["timesteps"]
        # and where the weighted loss sat during the stage's training: 4 steps × batch 4 examples
        assert len(p["training"]) == (25 if p["mode"] == "guided" else p["steps"])
        assert sum(r["examples"] for r in p["training"]) == 16
    summary = (run / "summary.md").read_text()
    assert "stage 2 student @ 2" in summary and "FAD vs teacher" in summary and "bsa generate" in summary
    paired = summary[summary.index("Paired with the teacher") :]  # the students clip by clip, with intervals
    assert "| Δ CLAP | Δ attribute acc |" in paired and "teacher @" not in paired.split("\n\n")[1]
    assert all(f"| stage {k} student @ " in paired for k in (0, 1, 2))
    gen = bsa_cli(
        "generate",
        *[
            "experiments/debug.yaml",
            *debug_env["overrides"],
            f"eval.model={run / 'stage02_2steps'}",
            "--steps",
            "2",
            "--caption",
            "A loud siren",
            "--out",
            str(debug_env["root"] / "gen"),
        ],
        timeout=300,
    )
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert len(list((debug_env["root"] / "gen").glob("*.wav"))) == 1


def test_two_process_ddp_run_trains_promotes_and_scores_once(debug_env):
    """trainer.devices=2 on the CPU (gloo): every rank trains and promotes, rank 0 writes, and the
    evaluation splits the captions across ranks yet scores all of them exactly once per stage."""
    import json

    out = run_distill(debug_env, "distill.run_name=ddp2", "trainer.devices=2", "distill.eval_clips=6")
    assert out.returncode == 0, out.stderr[-3000:]
    run = debug_env["root"] / "runs" / "ddp2"
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == [-1, 0, 1, 2]  # one line each: only rank 0 writes
    assert all(r["protocol"]["num_clips"] == 6 and r["protocol"]["world_size"] == 2 for r in records)
    summary = json.loads((run / "summary.json").read_text())
    assert [st["world_size"] for st in summary["stages"]] == [2, 2, 2]
    assert all(st["samples_per_s"] > 0 for st in summary["stages"])
    assert load_unet(run / "stage02_2steps" / "unet").config.time_cond_proj_dim == 256


def test_two_node_run_ranks_globally_and_writes_once(debug_env):
    """trainer.num_nodes=2 with one CPU process per "node", launched separately with NODE_RANK and
    a shared MASTER_ADDR/PORT as a cluster launcher would (Lightning's environment): the process of
    node 1 is global rank 1 and writes nothing; the run is that of a world of 2. The UNets'
    repeated blocks are compiled (trainer.compile_regions; the "eager" backend traces with dynamo
    and generates no kernels), so regional compilation under DDP, through the CLI, is covered too."""
    import json
    import os
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [
        sys.executable,
        "-m",
        "bsa.cli.distill",
        "experiments/debug.yaml",
        *debug_env["overrides"],
        "distill.eval_clips=6",
        "distill.run_name=nodes2",
        "distill.target_steps=4",  # the guided stage and one halving: the ranks are the point here
        "trainer.devices=1",
        "trainer.num_nodes=2",
        "trainer.compile=default",
        "trainer.compile_regions=true",
        "trainer.compile_backend=eager",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    nodes = [
        subprocess.Popen(
            argv,
            cwd=REPO,
            env={**env, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outs = [node.communicate(timeout=600) for node in nodes]
    for node, (_, stderr) in zip(nodes, outs, strict=True):
        assert node.returncode == 0, stderr[-3000:]
    assert "1 device(s) × 2 node(s)" in outs[0][0] and "(eager) of the repeated blocks" in outs[0][0]
    for rank, (_, stderr) in enumerate(outs):  # Lightning's own account of who is who
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in stderr
    assert "bsa distillation" in outs[0][0] and "bsa distillation" not in outs[1][0]  # rank 0 summarises
    run = debug_env["root"] / "runs" / "nodes2"
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in records] == [-1, 0, 1]
    assert all(r["protocol"]["world_size"] == 2 and r["protocol"]["num_clips"] == 6 for r in records)
    summary = json.loads((run / "summary.json").read_text())
    assert [st["world_size"] for st in summary["stages"]] == [2, 2]


def assert_trains_like(m, reference, b):
    """``m``'s distillation loss on batch ``b`` and its student's gradients equal ``reference``'s."""
    results = []
    for module_ in (m, reference):
        loss, _ = module_.distillation_loss(b["latents"], b["text_emb"])
        loss.backward()
        results.append((loss.detach(), [p.grad for p in module_.student.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for g, g_reference in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(g, g_reference, rtol=1e-4, atol=1e-6)


def test_compiled_calls_train_like_eager_calls_and_leave_the_modules_eager():
    """trainer.compile: the loss and the student's gradients equal the eager ones, each denoiser is
    captured as one graph (no graph breaks: the schedule lookup stays on the device), and the
    state dict and the exported teacher are those of the eager modules."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    b = batch(3)
    eager = module()
    torch._dynamo.reset()
    counters.clear()
    compiled = module(compile={"backend": "aot_eager"})
    assert_trains_like(compiled, eager, b)
    assert counters["stats"]["unique_graphs"] == 2  # the teacher's (no grad) and the student's
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert not any("_orig_mod" in k for k in compiled.state_dict())
    exported = compiled.export_teacher()
    assert type(exported) is Denoiser and exported.unet is not compiled.student.unet
    torch.testing.assert_close(exported.unet.conv_in.weight, compiled.student.unet.conv_in.weight)


def test_regional_compilation_compiles_the_repeated_blocks_in_place_and_trains_like_eager():
    """trainer.compile_regions: the UNets' transformer and resnet blocks are compiled in place and
    nothing else (no compiled whole calls); the loss and the student's gradients equal the eager
    ones; the state dict keeps its keys, and the exported teacher is an eager copy."""
    import torch._dynamo

    from bsa.models.unet import REPEATED_BLOCKS

    b = batch(3)
    eager = module()
    torch._dynamo.reset()
    regional = module(compile={"backend": "eager"}, compile_regions=True)
    assert regional._calls == {}
    for denoiser in (regional.teacher, regional.student):
        blocks = [m for m in denoiser.unet.modules() if type(m).__name__ in REPEATED_BLOCKS]
        assert blocks and all(m._compiled_call_impl is not None for m in blocks)
        assert denoiser.unet._compiled_call_impl is None  # the UNet around them stays eager
    assert_trains_like(regional, eager, b)
    assert list(regional.state_dict()) == list(eager.state_dict())
    exported = regional.export_teacher()
    assert all(m._compiled_call_impl is None for m in exported.unet.modules())


def test_regional_compilation_with_graphs_compiles_the_students_blocks_and_graphs_the_teachers_calls():
    """trainer.compile_regions with trainer.cuda_graphs: the teacher's calls (no gradient) are
    replayed from CUDA graphs and its blocks stay eager — half the graphs of the compile warm-up
    (issue "Speed at AudioLDM scale": 42 graphs a step, 21 of them the teacher's) — while the
    student's blocks are compiled; the step trains as eager does (graphs run eagerly on the CPU)."""
    import torch._dynamo

    from bsa.models.graphs import GraphedCall
    from bsa.models.unet import REPEATED_BLOCKS

    def blocks(denoiser):
        return [m for m in denoiser.unet.modules() if type(m).__name__ in REPEATED_BLOCKS]

    b = batch(3)
    eager = module()
    torch._dynamo.reset()
    both = module(compile={"backend": "eager"}, compile_regions=True, cuda_graphs=True)
    assert list(both._graphed) == ["teacher"] and isinstance(both._graphed["teacher"], GraphedCall)
    assert all(m._compiled_call_impl is not None for m in blocks(both.student))
    assert all(m._compiled_call_impl is None for m in blocks(both.teacher))
    assert_trains_like(both, eager, b)
    # whole-call compile keeps no graphs (its reduce-overhead mode is the compiled way to them)
    assert module(compile={"backend": "eager"}, cuda_graphs=True)._graphed == {}


def evaluate_teacher_reference_run(debug_env, out, *extra) -> dict:
    """`bsa evaluate` of the tiny world's teacher on 4 captions, no baselines, paired with that
    teacher (distill.reference_teacher); returns its metrics.json."""
    import json

    result = bsa_cli(
        "main",  # through the `bsa` entry point, as a user types it
        "evaluate",
        "experiments/debug.yaml",
        *debug_env["overrides"],
        "eval.num_clips=4",
        "eval.baselines=false",
        f"eval.out={out}",
        f"distill.reference_teacher={debug_env['root'] / 'teacher'}",
        *extra,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_evaluate_cli_scores_any_model_against_real_clips_and_the_teacher(debug_env, tmp_path):
    """`bsa evaluate` at 2 steps: FAD vs real and vs the 8-step CFG teacher, the protocol, a CSV row."""

    metrics = evaluate_teacher_reference_run(debug_env, tmp_path, "eval.steps=2")
    row = metrics["results"]["model @ 2 steps"]
    assert row["fad_teacher"] > 0 and row["fad_real"] > 0 and row["nfe"] == 4
    # paired with the teacher (same captions, noise, guidance), each with its 95 % bootstrap interval
    for k in ("latent_rmse", "mel_l1", "embedding_cosine", "attribute_agreement", "clap_difference"):
        assert row[f"paired_{k}_lo"] <= row[f"paired_{k}"] <= row[f"paired_{k}_hi"], k
    assert row["paired_latent_rmse"] > 0 and -1 <= row["paired_embedding_cosine"] <= 1
    # the teacher against itself with other noise is the floor of "FAD vs teacher"
    assert row["fad_teacher_floor"] > 0
    assert row["fad_teacher_ratio"] == pytest.approx(row["fad_teacher"] / row["fad_teacher_floor"])
    assert metrics["protocol"]["num_clips"] == 4 and metrics["protocol"]["fad_backbone"].startswith(
        "embedded"
    )
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2
    # the command as typed, once (not "bsa evaluate evaluate …" when run through `bsa`)
    assert metrics["protocol"]["command"].startswith("bsa evaluate experiments/debug.yaml ")
    # the model's per-clip scores, as a distillation record keeps them: their means are the row's
    per_clip = json.loads((tmp_path / "per_clip.json").read_text())["per_clip"]
    assert {"clap", "acc_mean", "acc_source", "noise_floor_db", "level_db"} <= set(per_clip)
    assert all(len(v) == 4 for v in per_clip.values())
    assert sum(per_clip["clap"]) / 4 == pytest.approx(row["clap"], abs=1e-5)
    assert sum(per_clip["acc_source"]) / 4 == pytest.approx(row["acc_source"], abs=1e-9)


def test_evaluate_cli_without_pairing_leaves_the_teacher_unsampled(debug_env, tmp_path):
    """eval.paired=false: the model alone (a per-caption analysis of a sampler needs no teacher
    outputs, which cost 200 CFG steps a clip): no FAD vs teacher, no paired metrics."""
    metrics = evaluate_teacher_reference_run(debug_env, tmp_path, "eval.steps=2", "eval.paired=false")
    row = metrics["results"]["model @ 2 steps"]
    assert row["nfe"] == 4 and "fad_real" in row and "clap" in row
    assert "fad_teacher" not in row and not any(k.startswith("paired_") for k in row)


def test_evaluate_cli_scores_the_baselines_beside_the_model(debug_env, tmp_path):
    """eval.baselines=true: the real clips (ceiling), their VAE + vocoder reconstruction and the
    shuffled-caption floor are scored beside the model, each waveform row with its silence floor
    where a caption asks for silence."""
    import json

    from bsa.data.audiocaps import read_caption_csv

    result = bsa_cli(
        "main",
        "evaluate",
        "experiments/debug.yaml",
        *debug_env["overrides"],
        "eval.num_clips=4",
        "eval.steps=2",
        "eval.paired=false",
        "eval.baselines=true",
        f"eval.out={tmp_path}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "metrics.json").read_text())["results"]
    assert set(results) == {
        "real clips (ceiling)",
        "real → VAE → vocoder",
        "shuffled captions (floor)",
        "model @ 2 steps",
    }
    rows, _ = read_caption_csv(debug_env["root"] / "data" / "test.csv")
    silence = any("in silence" in r.caption for r in rows[:4])
    for name in ("real clips (ceiling)", "real → VAE → vocoder", "model @ 2 steps"):
        assert ("silence_floor_dbfs" in results[name]) == silence, name
    assert "fad_real" not in results["shuffled captions (floor)"]  # the real clips themselves


def test_evaluate_cli_scores_the_teacher_with_a_guidance_interval_against_itself(debug_env, tmp_path):
    """`bsa evaluate` of the teacher at its own 8 steps with eval.guidance_interval=[0,500]: guided
    at the 4 steps of t ≤ 500 only (NFE 8 + 4 = 12), paired with the teacher guided everywhere."""

    metrics = evaluate_teacher_reference_run(
        debug_env, tmp_path, "eval.steps=8", "eval.guidance_interval=[0,500]"
    )
    row = metrics["results"]["model @ 8 steps"]
    assert row["nfe"] == 12 and metrics["protocol"]["guidance_interval"] == [0, 500]
    assert row["fad_teacher"] > 0 and row["paired_latent_rmse"] > 0  # not the teacher's own outputs


@pytest.mark.parametrize("mode", ["progressive", "guided"])
def test_teacher_float32_computes_the_target_outside_autocast(mode):
    """Under bf16 autocast the teacher's target is bf16-rounded unless distill.teacher_float32."""
    b = batch()
    z = b["latents"]
    t = torch.tensor([999, 700, 400, 100])
    two_steps = None if mode == "guided" else (t - 50, t - 100)
    results = {}
    for float32 in (False, True):
        m = module(mode, teacher_float32=float32, guided_student=mode == "guided")
        fn = m._with_guidance("teacher", b["text_emb"], torch.full((4,), 2.5))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            results[float32] = m.teacher_target(fn, z, t, two_steps)
        exact = m.teacher_target(fn, z, t, two_steps)  # no autocast at all
    assert torch.equal(results[True].float(), exact)
    assert not torch.allclose(results[False].float(), exact, rtol=0, atol=1e-5)


def test_a_v_prediction_student_of_an_epsilon_teacher_records_and_reloads_its_parameterisation(debug_env):
    """distill.student_prediction: the students read their output as v; every stage folder says so
    (bsa_stage.json and the scheduler config), and every loader samples it as v."""
    import json

    from bsa.config import load_config
    from bsa.experiment.build import load_denoiser
    from bsa.experiment.evaluate import load_pipeline

    out = run_distill(
        debug_env,
        "distill.run_name=vstudent",
        "distill.target_steps=4",
        "distill.student_prediction=v_prediction",
        "eval.every_n_steps=0",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = debug_env["root"] / "runs" / "vstudent"
    folders = sorted(p for p in run.glob("stage*") if p.is_dir())
    assert [p.name for p in folders] == ["stage00_guided_8steps", "stage01_4steps"]
    cfg = load_config([REPO / "experiments/debug.yaml"], debug_env["overrides"])
    for folder in folders:
        assert json.loads((folder / "bsa_stage.json").read_text())["prediction_type"] == "v_prediction"
        scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        assert scheduler["prediction_type"] == "v_prediction"
        assert load_denoiser(cfg, str(folder)).prediction_type == "v_prediction"
    cfg.eval.model = str(folders[-1])
    pipe, _ = load_pipeline(cfg, "cpu")
    assert pipe.denoiser.prediction_type == "v_prediction"
    assert load_denoiser(cfg, cfg.models.teacher).prediction_type == "epsilon"


def test_the_weighted_loss_per_noise_level_accumulates_over_training_and_survives_a_resume():
    m = module("progressive", student_steps=4).train()
    assert m.training_profile() == []
    for seed in (0, 1):
        m.distillation_loss(*batch(seed).values())
    m.eval()
    m.distillation_loss(
        **dict(zip(("latents", "text"), batch(2).values(), strict=True))
    )  # validation: not counted
    rows = m.training_profile()
    assert [r["level"] for r in rows] == [0, 1, 2, 3] and sum(r["examples"] for r in rows) == 8
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    checkpoint = {}
    m.on_save_checkpoint(checkpoint)
    resumed = module("progressive", student_steps=4).train()
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.training_profile() == rows
    resumed.distillation_loss(*batch(3).values())
    assert sum(r["examples"] for r in resumed.training_profile()) == 12
    guided = module("guided", guided_student=True).train()
    guided.distillation_loss(*batch(0).values())
    assert len(guided.training_profile()) == 25


def test_error_profile_gradient_norms_are_those_of_the_weighted_loss_per_step():
    m = module("progressive", student_steps=4).eval()
    latents, text = batch(0).values()
    rows = m.error_profile(latents, text, seed=0)
    assert all(r["grad_norm"] > 0 for r in rows) and sum(r["grad_share"] for r in rows) == pytest.approx(1.0)
    assert all(p.grad is None for p in m.student.parameters())  # measured, not accumulated
    weight_fn = m.weight_fn
    m.weight_fn = lambda snr: 2 * weight_fn(snr)  # the gradient of a weighted loss is linear in its weight
    doubled = m.error_profile(latents, text, seed=0)
    for a, b in zip(rows, doubled, strict=True):
        assert b["grad_norm"] == pytest.approx(2 * a["grad_norm"], rel=1e-5)
        assert b["grad_share"] == pytest.approx(a["grad_share"], rel=1e-5)
    # eval.profile_gradients=false (the CPU preset): the profile without the backward passes
    assert not any("grad_norm" in r for r in m.error_profile(latents, text, seed=0, grad_clips=0))
    # a frozen student has no gradient: none reported (it was 0.0 at every step, a share of 0)
    m.student.requires_grad_(False)
    assert not any("grad_norm" in r for r in m.error_profile(latents, text, seed=0))


def profile_row_by_hand(m, latents, text, t, two_steps, seed=0, k=16):
    """One step's row of ``error_profile`` as its definition reads, on that step's items alone."""
    device = latents.device
    g = torch.Generator(device=device).manual_seed(seed)
    eps = torch.randn(latents.shape, generator=g, device=device)
    b = latents.shape[0]
    scale = torch.full((b,), m.hparams.guidance_scale, device=device)
    tb = torch.full((b,), int(t), device=device)
    alpha, sigma = (v.float().view(-1, 1, 1, 1) for v in m.schedule.alpha_sigma(tb))
    z_t = alpha * latents + sigma * eps
    two = None if two_steps is None else tuple(torch.full((b,), int(v), device=device) for v in two_steps)
    target = m.teacher_target(m._with_guidance("teacher", text, scale), z_t, tb, two)
    student = m.ema.module if m.ema is not None else m.student
    with torch.no_grad():
        x_mse = float((m._guided_call(student, text, scale)(z_t, tb) - target).pow(2).mean())
    weight = float(m.weight_fn(m.schedule.snr(torch.tensor([int(t)], device=device)).float()))
    params = [q for q in m.student.parameters() if q.requires_grad]
    loss = (
        weight * (m._guided_call(m.student, text[:k], scale[:k])(z_t[:k], tb[:k]) - target[:k]).pow(2).mean()
    )
    grad_norm = float(torch.sqrt(sum(q.pow(2).sum() for q in torch.autograd.grad(loss, params))))
    return x_mse, grad_norm


@pytest.mark.parametrize(
    "mode, guided, device",
    [
        ("progressive", False, "cpu"),
        ("guided", True, "cpu"),
        ("progressive", True, "cpu"),
        pytest.param(
            "progressive",
            True,
            "cuda",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")],
        ),
    ],
)
def test_the_error_profile_batches_its_steps_and_gives_each_step_its_own_row(
    mode, guided, device, monkeypatch
):
    """The steps' items share denoiser calls and one backward pass (a population of the student's
    copies): each row must still be its step's error and gradient alone, in any chunking. On the GPU
    in full float32: with cuDNN's TF32 convolutions (torch's default) the small model's first
    gradient norm differed by 1.1 % on an H100 (2026-12-07), too loose a tolerance to test rows by."""
    if device == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    m = module(mode, student_steps=4, guided_student=guided).eval().to(device)
    latents, text = (v.to(device) for v in batch(0, n=6).values())
    rows = m.error_profile(latents, text, seed=0, points=5, grad_clips=3)
    steps = (
        [(t, (mid, s)) for t, mid, s in zip(m.step_t, m.step_mid, m.step_s, strict=True)]
        if mode == "progressive"
        else [(t, None) for t in step_grid(5, m.schedule.num_train_timesteps).to(device)]
    )
    assert len(rows) == len(steps) and len({r["x_mse"] for r in rows}) == len(rows)
    for row, (t, two) in zip(rows, steps, strict=True):
        x_mse, grad_norm = profile_row_by_hand(m, latents, text, t, two, k=3)
        assert row["t"] == int(t)
        tol = 1e-4
        assert row["x_mse"] == pytest.approx(x_mse, rel=tol / 10)
        assert row["grad_norm"] == pytest.approx(grad_norm, rel=tol)
    # one step per call and one step's gradients at a time: the same rows
    apart = m.error_profile(latents, text, seed=0, points=5, grad_clips=3, batch_items=6, gradient_elements=1)
    for a, b in zip(rows, apart, strict=True):
        assert a == pytest.approx(b, rel=tol)


def test_the_error_profile_chooses_convolutions_by_heuristics_and_restores_the_setting():
    """cudnn.benchmark would time every new shape of the profile's few calls (a first member's stage
    end 27.4 s against 1.6 s on an H100); the setting is the preset's again afterwards."""
    m = module("progressive", student_steps=4).eval()
    seen = []
    forward = m.teacher.forward
    m.teacher.forward = lambda *a, **k: seen.append(torch.backends.cudnn.benchmark) or forward(*a, **k)
    was = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = True
        m.error_profile(*batch(0).values(), seed=0, grad_clips=0)
        assert seen and not any(seen) and torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = was


def test_progress_updates_every_step_on_a_terminal_and_about_twenty_times_a_stage_in_a_log():
    from bsa.callbacks.progress import refresh_rate_for

    assert refresh_rate_for(800, interactive=True) == 1
    assert refresh_rate_for(800, interactive=False) == 40
    assert refresh_rate_for(4, interactive=False) == 1  # short stages still show every step


def test_lightnings_matmul_advice_is_filtered_but_its_warnings_are_not():
    """trainer.matmul_precision is set on purpose; Lightning's advice about it is chatter."""
    import logging

    from bsa.experiment.build import _NoChatter

    def record(msg):
        return logging.LogRecord("lightning.fabric", logging.INFO, __file__, 1, msg, None, None)

    advice = "You are using a CUDA device ('NVIDIA H200') that has Tensor Cores. To properly utilize them, …"
    assert not _NoChatter().filter(record(advice))
    assert _NoChatter().filter(record("Restored all states from the checkpoint at x.ckpt"))


def test_scoring_only_the_listed_step_counts_skips_the_others_and_resumes_as_finished(debug_env):
    """distill.score_steps=[8, 2]: the guided stage (8 steps) and the last stage are scored, the
    first halving (4 steps) is exported but not. Run again, the run is finished: no stage is trained or scored twice."""
    import json

    argv = [
        "distill.run_name=lastonly",
        "distill.target_steps=2",
        "distill.eval_clips=4",
        "distill.score_steps=[8,2]",
    ]
    out = run_distill(debug_env, *argv)
    assert out.returncode == 0, out.stderr[-3000:]
    run = debug_env["root"] / "runs" / "lastonly"
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["final"]) for r in records] == [(-1, True), (0, True), (2, True)]
    assert [p.name for p in sorted(run.glob("stage*")) if p.is_dir()] == [
        "stage00_guided_8steps",
        "stage01_4steps",
        "stage02_2steps",
    ]
    again = run_distill(debug_env, *argv)
    assert again.returncode == 0, again.stderr[-3000:]
    trained = [
        line for line in again.stdout.splitlines() if line.startswith(("stage 0 (", "stage 1 (", "stage 2 ("))
    ]
    assert trained == [], again.stdout[-2000:]  # no stage trained, resumed or exported again
    assert (run / "eval.jsonl").read_text().count("\n") == len(records)


def test_the_guided_stage_trains_with_its_own_weighting_and_the_records_say_which(debug_env):
    """distill.guided_weighting: the guided stage's loss is weighted by that spec, the halvings' by
    distill.weighting (here the package default, bsa at (0.1, 20)); each stage's folder, records and
    error profile name the weighting it trained with, and the run's folder says both."""
    import json

    from bsa.diffusion.weighting import get_weighting

    out = run_distill(
        debug_env, "distill.target_steps=4", "distill.guided_weighting=min_snr", "eval.every_n_steps=0"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the guided stage min_snr (distill.guided_weighting)" in out.stdout
    run = debug_env["root"] / "runs" / "debug-bsa-floor0.1-gamma20-guided-min_snr-seed0"
    labels = {0: "min_snr", 1: "bsa(floor=0.1,gamma=20)"}
    for stage, name in ((0, "stage00_guided_8steps"), (1, "stage01_4steps")):
        assert json.loads((run / name / "bsa_stage.json").read_text())["weighting"] == labels[stage]
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert {(r["stage"], r["weighting"]) for r in records if r["stage"] >= 0} == set(labels.items())
    weight_fns = {0: get_weighting("min_snr", gamma=5.0), 1: get_weighting("bsa", floor=0.1, gamma=20.0)}
    profiles = [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]
    assert [p["stage"] for p in profiles] == [0, 1]
    for p in profiles:
        snr = torch.tensor([r["snr"] for r in p["profile"]], dtype=torch.float64)
        weights = [r["weight"] for r in p["profile"]]
        assert weights == pytest.approx(weight_fns[p["stage"]](snr).tolist(), rel=1e-5)
        other = weight_fns[1 - p["stage"]](snr).tolist()  # the two differ on these grids' SNRs
        assert weights != pytest.approx(other, rel=1e-3)
    assert "weighting bsa(floor=0.1,gamma=20) (the guided stage min_snr)" in (run / "summary.md").read_text()


def test_profile_rows_by_hand():
    """Two steps: ε-MSE = SNR · x-MSE, weighted = w · x-MSE, shares of the weighted errors and of the
    gradient norms; without gradient norms, no gradient columns."""
    from bsa.lit.distill import profile_rows

    rows = profile_rows([900, 100], [0.5, 4.0], [1.0, 2.0], [0.2, 0.1], [3.0, 1.0])
    assert [r["t"] for r in rows] == [900, 100] and [r["step"] for r in rows] == [0, 1]
    assert [r["eps_mse"] for r in rows] == pytest.approx([0.1, 0.4])
    assert [r["weighted"] for r in rows] == pytest.approx([0.2, 0.2])
    assert [r["share"] for r in rows] == pytest.approx([0.5, 0.5])
    assert [r["grad_share"] for r in rows] == pytest.approx([0.75, 0.25])
    bare = profile_rows([900, 100], [0.5, 4.0], [1.0, 2.0], [0.2, 0.1], None)
    assert not any("grad_norm" in r or "grad_share" in r for r in bare)


def test_low_precision_norms_reach_the_teacher_the_student_and_its_ema_and_a_bf16_step_trains():
    """trainer.low_precision_norms: every GroupNorm of the stage's denoisers (the EMA copy's too)
    runs in the autocast dtype; a bf16-autocast training step gives a finite loss and gradients;
    off (the default), the denoisers keep nn.GroupNorm."""
    from bsa.models.unet import AutocastDtypeGroupNorm

    def norms(m):
        return [
            type(n)
            for d in (m.teacher, m.student, m.ema.module)
            for n in d.modules()
            if isinstance(n, torch.nn.GroupNorm)
        ]

    on, off = module(ema_decay=0.9, low_precision_norms=True), module(ema_decay=0.9)
    assert norms(on) and set(norms(on)) == {AutocastDtypeGroupNorm}
    assert set(norms(off)) == {torch.nn.GroupNorm}
    b = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = on.distillation_loss(b["latents"], b["text_emb"])
    loss.backward()
    assert torch.isfinite(loss) and all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in on.student.parameters()
        if p.requires_grad
    )
