import json

import pytest
import torch

from bsa.audio import log_mel
from bsa.data.embedded import LABELS
from bsa.diffusion import audioldm_schedule, x_from_eps
from bsa.models.assets import resolve_model_path
from bsa.models.autoencoder import build_vae, decode_latents, encode_mel, load_vae
from bsa.models.denoiser import Denoiser
from bsa.models.evaluator import AudioEvaluator
from bsa.models.unet import audioldm_unet_config, load_unet, with_guidance_input
from bsa.models.vocoder import GriffinLimVocoder, load_vocoder


@pytest.mark.parametrize("name", ["vae", "teacher", "evaluator"])
def test_shipped_models_record_their_training(name):
    record = json.loads((resolve_model_path(f"embedded:{name}") / "training.json").read_text())
    assert record["model"] == name and len(record["dataset"]["sha256"]) == 64
    assert record["dataset"]["config"]["seed"] == 0 and "preset: embedded-gpu" in record["config"]
    assert len(record["curve"]) > 3


def test_shipped_vae_and_teacher_shapes():
    vae = load_vae(resolve_model_path("embedded:vae"))
    mel = log_mel(torch.randn(2, 40960) * 0.1).unsqueeze(1)
    z = encode_mel(vae, mel)
    assert z.shape == (2, 8, 64, 16)
    assert decode_latents(vae, z * vae.config.scaling_factor).shape == (2, 1, 256, 64)
    unet = load_unet(resolve_model_path("embedded:teacher"))
    assert unet.config.projection_class_embeddings_input_dim == 384 and list(unet.config.sample_size) == [
        64,
        16,
    ]
    out = unet(
        torch.randn(2, 8, 64, 16),
        torch.tensor([10, 900]),
        encoder_hidden_states=None,
        class_labels=torch.randn(2, 384),
    ).sample
    assert out.shape == (2, 8, 64, 16) and bool(torch.isfinite(out).all())


def test_shipped_evaluator_heads_and_embeddings():
    ev = AudioEvaluator.from_pretrained(resolve_model_path("embedded:evaluator")).eval()
    assert {k: len(v) for k, v in ev.config.labels.items()} == {k: len(v) for k, v in LABELS.items()}
    with torch.no_grad():
        e = ev.embed(torch.randn(3, 256, 64))
        assert e.shape == (3, 256)
        assert {k: v.shape[1] for k, v in ev.classify(e).items()} == {k: len(v) for k, v in LABELS.items()}
        assert torch.allclose(ev.audio_joint(e).norm(dim=-1), torch.ones(3))


def test_teacher_round_trip_through_diffusers_is_exact(tmp_path):
    unet = load_unet(resolve_model_path("embedded:teacher")).eval()
    unet.save_pretrained(tmp_path / "unet")
    again = load_unet(tmp_path / "unet").eval()
    args = (torch.randn(2, 8, 64, 16), torch.tensor([3, 700]))
    kw = dict(encoder_hidden_states=None, class_labels=torch.randn(2, 384))
    with torch.no_grad():
        assert torch.equal(unet(*args, **kw).sample, again(*args, **kw).sample)


def test_loading_is_strict_and_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        load_unet(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no VAE here"):
        load_vae(tmp_path)
    with pytest.raises(FileNotFoundError, match="`make nosuch` trains it"):
        resolve_model_path("embedded:nosuch")
    build_vae("tiny").save_pretrained(tmp_path / "vae")
    with pytest.raises(
        ValueError, match=r"vae: the weights do not match a UNet2DConditionModel .*missing keys"
    ):
        load_unet(tmp_path / "vae")  # diffusers alone would load this with random weights and a warning


def test_denoiser_converts_epsilon_in_one_place():
    torch.manual_seed(0)
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**audioldm_unet_config("tiny", 12, 8, (16, 4))).eval()
    schedule = audioldm_schedule()
    den = Denoiser(unet, schedule)
    z, t, c = torch.randn(2, 8, 16, 4), torch.tensor([5, 990]), torch.randn(2, 12)
    with torch.no_grad():
        eps = unet(z, t, encoder_hidden_states=None, class_labels=c).sample
        alpha, sigma = schedule.alpha_sigma(t)
        torch.testing.assert_close(den(z, t, c), x_from_eps(z, eps, alpha.float(), sigma.float()))
    with pytest.raises(ValueError, match="no guidance input"):
        den(z, t, c, guidance=torch.tensor(2.0))


def test_guidance_input_on_a_unet_built_in_memory():
    """A config that never named time_cond_proj_dim (diffusers records it as a default) still gets the input."""
    from diffusers import UNet2DConditionModel

    cfg = audioldm_unet_config("tiny", 12, 8, (16, 4))
    del cfg["time_cond_proj_dim"]
    guided = with_guidance_input(UNet2DConditionModel(**cfg))
    assert guided.config.time_cond_proj_dim == 256 and guided.time_embedding.cond_proj is not None


def test_guidance_input_starts_as_the_unguided_model():
    """The w-conditioned copy (zero-initialised projection) computes exactly the original for any w."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(1)
    unet = UNet2DConditionModel(**audioldm_unet_config("tiny", 12, 8, (16, 4))).eval()
    guided = with_guidance_input(unet).eval()
    schedule = audioldm_schedule()
    z, t, c = torch.randn(3, 8, 16, 4), torch.tensor([1, 500, 999]), torch.randn(3, 12)
    with torch.no_grad():
        plain = Denoiser(unet, schedule)(z, t, c)
        for w in (0.0, 2.5, 6.0):
            torch.testing.assert_close(Denoiser(guided, schedule)(z, t, c, torch.full((3,), w)), plain)
    with pytest.raises(ValueError, match="needs the guidance scale"):
        Denoiser(guided, schedule)(z, t, c)


def test_griffin_lim_inverts_the_mel_front_end():
    t = torch.arange(40960) / 16000
    wave = 0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.1 * torch.sin(2 * torch.pi * 1800 * t)
    mel = log_mel(wave.unsqueeze(0))
    voc = load_vocoder("griffin-lim")
    assert isinstance(voc, GriffinLimVocoder)
    back = voc(mel)
    assert back.shape == (1, 40960)
    again = log_mel(back)
    loud = mel > mel.max() - 4  # where the signal is (near-silent bins sit at log(1e-5) and are noise)
    err = (again - mel)[loud].abs().mean()
    convergence = (again.exp() - mel.exp()).norm() / mel.exp().norm()  # spectral convergence
    assert err < 0.3 and convergence < 0.3, f"mean |Δ log-mel| = {err:.3f}, convergence {convergence:.3f}"


def test_griffin_lim_output_is_aligned_with_the_mel_frames_it_came_from():
    """Tone bursts with sharp onsets: the reconstruction's log-mel is closest to the input's where
    it stands, not shifted by part of a hop. GriffinLim's centred frames put every clip half a hop
    (80 samples) early against bsa.audio.log_mel's frames, and shifting it later then helped."""
    t = torch.arange(32000) / 16000
    gate = ((t % 0.25) < 0.08).float()  # 8 bursts: an onset and an offset every 0.25 s
    wave = gate * (
        0.3 * torch.sin(2 * torch.pi * 600 * t)
        + 0.05 * torch.randn(32000, generator=torch.Generator().manual_seed(0))
    )
    mel = log_mel(wave.unsqueeze(0))
    back = GriffinLimVocoder()(mel)

    def error(shift: int) -> float:
        moved = torch.nn.functional.pad(back, (max(shift, 0), max(-shift, 0)))
        moved = moved[:, max(-shift, 0) : max(-shift, 0) + back.shape[1]]
        return (log_mel(moved) - mel).abs().mean().item()

    here = error(0)
    assert all(here < error(s) for s in (-80, -40, 40, 80)), {
        s: round(error(s), 4) for s in (-80, -40, 0, 40, 80)
    }


def test_a_mel_front_end_first_made_in_inference_mode_still_takes_gradients(monkeypatch):
    """log_mel's transform is cached per process; first made inside torch.inference_mode (a
    Lightning validation step, the latent cache) its window was an inference tensor, and the
    vocoder's mel loss failed later in the same process ("Inference tensors cannot be saved for
    backward") — in CI, depending on which test file a worker had run before."""
    import bsa.audio

    monkeypatch.setattr(bsa.audio, "_MEL_CACHE", {})
    with torch.inference_mode():
        log_mel(torch.randn(1, 1600))
    wave = torch.randn(1, 1600, requires_grad=True)
    log_mel(wave).sum().backward()
    assert wave.grad is not None and torch.isfinite(wave.grad).all()


def test_log_magnitude_is_framed_as_the_log_mel_is():
    """The magnitude vocoder's target: its mel (the Slaney filterbank of its exponent) is log_mel's."""
    import torchaudio

    from bsa.audio import log_magnitude

    wave = 0.3 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    magnitude = log_magnitude(wave)
    mel = log_mel(wave)
    assert magnitude.shape == (2, 513, mel.shape[1])
    fb = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 64, 16000, norm="slaney", mel_scale="slaney")
    again = torch.log(torch.clamp(fb.T @ magnitude.exp(), min=1e-5)).transpose(1, 2)
    assert torch.allclose(again, mel, atol=1e-4)


def test_magnitude_vocoder_starts_as_griffin_lim_and_learns_the_magnitude(tmp_path):
    """Untrained, its log-magnitude is the mel's least-squares inverse (the last layer is zero);
    a few steps of its loss on one clip bring that magnitude closer to the clip's; saved in half
    precision and loaded by load_vocoder it is the same network."""
    from bsa.audio import log_magnitude
    from bsa.lit.vocoder import MagnitudeVocoderModule
    from bsa.models.vocoder import MagnitudeVocoder

    t = torch.arange(16000) / 16000
    wave = (0.3 * torch.sin(2 * torch.pi * 440 * t) * (t < 0.5)).unsqueeze(0)
    module = MagnitudeVocoderModule({"channels": 32, "blocks": 2}, lr=1e-2)
    voc = module.vocoder
    inverse = voc.griffin_lim.inverse_mel(log_mel(wave).exp().transpose(1, 2)).clamp(min=1e-5).log()
    assert torch.equal(voc.log_magnitude(log_mel(wave)), inverse)
    before = module.loss(wave).item()
    optimizer = torch.optim.Adam(voc.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        module.loss(wave).backward()
        optimizer.step()
    assert module.loss(wave).item() < 0.7 * before
    # with Parallel WaveGAN's spectral-convergence term beside it (train.vocoder.spectral_convergence)
    both = MagnitudeVocoderModule({"channels": 32, "blocks": 2}, spectral_convergence=2.0)
    l1, sc = both.terms(wave)
    assert 0 < sc.item() < 1 and both.loss(wave).item() == pytest.approx(l1.item() + 2 * sc.item())
    assert voc(log_mel(wave)).shape == (1, 16000)
    import copy

    copy.deepcopy(voc).half().save_pretrained(tmp_path)  # as make vocoder saves it
    loaded = load_vocoder(str(tmp_path))
    assert isinstance(loaded, MagnitudeVocoder)
    rounded = copy.deepcopy(voc)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
    assert torch.allclose(
        loaded.log_magnitude(log_mel(wave)), rounded.log_magnitude(log_mel(wave)), atol=1e-4
    )
    assert log_magnitude(wave).shape[-1] == log_mel(wave).shape[1]


def test_ema_hand_values_with_warm_up():
    """θ_ema ← d·θ_ema + (1 − d)·θ with d_k = min(decay, (1 + k)/(10 + k)): d_0 = 0.1, d_1 = 2/11."""
    from bsa.models.ema import EMA

    model = torch.nn.Linear(2, 1, bias=True)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(-2.0)
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 0.9))
    torch.testing.assert_close(ema.module.bias, torch.tensor([-1.8]))
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 2 / 11 * 0.9 + 9 / 11))
    assert int(ema.num_updates) == 2


def test_regional_compilation_compiles_every_block_shape_past_dynamos_recompile_limit():
    """A UNet's resnet blocks come in more input shapes than dynamo's default recompile limit (8
    per code object): on the 185 M UNet the ninth shape hit the limit and every block of a later
    shape ran eager (bench on the H200, bf16+regional: 220 against 241 samples/s eager). Every
    shape the blocks see must be compiled."""
    import torch
    import torch._dynamo
    from diffusers import UNet2DConditionModel

    from bsa.models.unet import compile_repeated_blocks

    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D",) * 4,
        up_block_types=("UpBlock2D",) * 4,
        mid_block_type=None,
        block_out_channels=(8, 16, 24, 32),
        layers_per_block=2,
        norm_num_groups=8,
        cross_attention_dim=8,
    ).eval()
    shapes = set()
    hooks = [
        m.register_forward_pre_hook(lambda m, args: shapes.add(tuple(args[0].shape)))
        for m in unet.modules()
        if type(m).__name__ == "ResnetBlock2D"
    ]
    x, t, text = torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 3, 8)
    with torch.no_grad():
        unet(x, t, text)
    for h in hooks:
        h.remove()
    assert len(shapes) > 8  # the case: more shapes than the default limit

    compiled = []

    def counting_backend(gm, example_inputs):
        compiled.append(tuple(example_inputs[0].shape) if example_inputs else ())
        return gm.forward

    torch._dynamo.reset()
    compile_repeated_blocks(unet, backend=counting_backend)
    with torch.no_grad():
        unet(x, t, text)
    assert len(compiled) >= len(shapes)
    torch._dynamo.reset()


def test_loading_a_trained_vocoder_says_nothing_unactionable(tmp_path, capfd, caplog):
    """Loading a trained vocoder printed diffusers' "Cannot initialize model with low cpu memory
    usage because `accelerate` was not found… pip install accelerate" — advice for a package bsa
    does not need (the models are small): the loaders ask for the plain load."""
    from bsa.models.vocoder import MagnitudeVocoder

    MagnitudeVocoder(channels=16, blocks=1).save_pretrained(tmp_path)
    caplog.set_level("INFO")
    load_vocoder(str(tmp_path))
    out, err = capfd.readouterr()
    assert "accelerate" not in out + err + caplog.text


def test_the_shipped_vocoder_predicts_the_magnitude_closer_than_the_mels_inverse():
    """embedded:vocoder is the trained MagnitudeVocoder (docs/results/teacher.md: reconstruction FAD 17.6 against
    Griffin-Lim's 33.5 through the VAE); on held-out clips of the generator its magnitude is closer
    to the true one than the mel's least-squares inverse it starts from, in the loud bins
    (spectral convergence) — an untrained or missing asset fails here."""
    import numpy as np

    from bsa.audio import log_magnitude
    from bsa.data.embedded import clip_spec, synthesise
    from bsa.lit.vocoder import spectral_convergence
    from bsa.models.vocoder import MagnitudeVocoder

    voc = load_vocoder("embedded:vocoder")
    assert isinstance(voc, MagnitudeVocoder)
    clips = []
    for i in range(8):
        spec, rng = clip_spec(123, "test", i)  # another seed than the data set's: unseen clips
        clips.append(torch.from_numpy(np.asarray(synthesise(spec, rng, 2.56, 16000), dtype=np.float32)))
    wave = torch.stack(clips)
    mel, true = log_mel(wave), log_magnitude(wave).exp()
    with torch.no_grad():
        learned = voc.log_magnitude(mel).exp()
        inverse = voc.griffin_lim.inverse_mel(mel.exp().transpose(1, 2)).clamp(min=1e-5)
    assert spectral_convergence(learned, true) < 0.85 * spectral_convergence(inverse, true)


def test_autocast_dtype_group_norm_runs_the_kernel_in_the_activations_dtype(monkeypatch):
    """Under a bf16 autocast the GroupNorm's kernel gets the bf16 activation and bf16 parameters
    with autocast off (CUDA's autocast would run it in float32); outside autocast, or on a float32
    input, it is nn.GroupNorm exactly. The swap keeps the parameters and the state dict."""
    import torch.nn.functional as F
    from diffusers import UNet2DConditionModel

    from bsa.models.unet import AutocastDtypeGroupNorm, autocast_dtype_group_norms

    calls = []
    group_norm = F.group_norm

    def spied(x, num_groups, weight=None, bias=None, eps=1e-5):
        calls.append((x.dtype, weight.dtype, torch.is_autocast_enabled("cpu")))
        return group_norm(x, num_groups, weight, bias, eps)

    monkeypatch.setattr(F, "group_norm", spied)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**audioldm_unet_config("tiny", 6, 8, (8, 4)))
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    plain = torch.nn.GroupNorm(4, 8)
    torch.nn.init.normal_(plain.weight), torch.nn.init.normal_(plain.bias)
    x = torch.randn(2, 8, 4, 4)
    reference = plain(x)
    count = sum(type(m) is torch.nn.GroupNorm for m in unet.modules())
    assert count > 0 and autocast_dtype_group_norms(unet) == count and autocast_dtype_group_norms(plain) == 1
    assert not any(type(m) is torch.nn.GroupNorm for m in unet.modules())
    assert all(torch.equal(v, before[k]) for k, v in unet.state_dict().items()) and len(before) == len(
        unet.state_dict()
    )
    assert isinstance(plain, AutocastDtypeGroupNorm) and torch.equal(plain(x), reference)  # no autocast
    calls.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = plain(x.bfloat16())
        assert torch.equal(plain(x), reference)  # a float32 input: nn.GroupNorm's path
    assert calls[0] == (torch.bfloat16, torch.bfloat16, False) and y.dtype == torch.bfloat16
    expected = group_norm(x.bfloat16(), 4, plain.weight.bfloat16(), plain.bias.bfloat16(), plain.eps)
    assert torch.equal(y, expected)
