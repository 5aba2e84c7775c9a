"""Teacher training through `bsa train teacher` on the resident (on-device) batches; its compiled call."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bsa.models.unet import audioldm_unet_config, load_unet

REPO = Path(__file__).resolve().parents[1]


def test_teacher_trains_on_resident_batches_across_invocations(debug_env, tmp_path):
    """`train.stop_after_minutes` ends the first invocation after its first step with a checkpoint
    and no export (exit 3); the same command continues to the last step and exports."""
    out = tmp_path / "teacher"
    command = [
        sys.executable,
        "-m",
        "bsa.cli.train",
        "teacher",
        "experiments/debug.yaml",
        *debug_env["overrides"],
        "data.resident=true",
        "trainer.log_every_n_steps=1",
        f"train.teacher.out={out}",
        f"paths.output_root={tmp_path / 'runs'}",
    ]
    first = subprocess.run(
        [*command, "train.stop_after_minutes=0.000001"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 3, first.stderr[-3000:]
    assert "stopped at step 1/6" in first.stdout and not out.exists()
    checkpoint = torch.load(tmp_path / "runs" / "train-teacher" / "last.ckpt", weights_only=False)
    first_seconds = next(v["seconds"] for k, v in checkpoint["callbacks"].items() if "Recorder" in k)
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resuming from" in run.stdout
    record = json.loads((out / "training.json").read_text())
    steps = [r["step"] for r in record["curve"] if r["kind"] == "train"]
    assert steps == list(range(1, 7)), steps
    assert "resident: true" in record["config"]
    assert record["trained_for_seconds"] > first_seconds, "training time counts every invocation"
    from safetensors.torch import load_file

    stored = load_file(out / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in stored.values()} == {torch.float16}, "shipped weights are float16"
    unet = load_unet(out)
    assert {p.dtype for p in unet.parameters()} == {torch.float32}, "and load as float32"


def test_teacher_validation_uses_the_eager_unet_and_training_the_compiled_call():
    """A compiled call would be recompiled for evaluation mode at the first validation (which cost
    a device call its whole budget): validation must not touch it."""
    from bsa.lit.teacher import TeacherModule

    module = TeacherModule(
        audioldm_unet_config("tiny", 8, 4, (16, 8)), torch.zeros(8), compile={"backend": "eager"}
    )
    calls = []

    def compiled(*args, **kwargs):
        calls.append(1)
        return module.unet(*args, **kwargs)

    module._compiled = compiled
    batch = {"latents": torch.randn(2, 4, 16, 8), "text_emb": torch.randn(2, 8)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "log", lambda *a, **k: None)
        module.validation_step(batch, 0)
        assert calls == []
        module.denoising_loss(batch["latents"], batch["text_emb"])
        assert calls == [1]


def test_the_compiled_teacher_call_gives_the_eager_loss_and_leaves_the_state_dict_alone():
    from bsa.lit.teacher import TeacherModule

    config = audioldm_unet_config("tiny", 8, 4, (16, 8))
    eager = TeacherModule(config, torch.zeros(8))
    compiled = TeacherModule(config, torch.zeros(8), compile={"backend": "eager"})
    compiled.load_state_dict(eager.state_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no `_orig_mod.` keys
    latents, text = torch.randn(2, 4, 16, 8), torch.randn(2, 8)
    losses = []
    for m in (eager, compiled):
        torch.manual_seed(0)
        losses.append(m.denoising_loss(latents, text))
    assert torch.equal(losses[0], losses[1])
