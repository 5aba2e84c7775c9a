"""A small AudioLDM-shaped model, built locally from configs with random weights (no download),
saved in AudioLDM's diffusers layout, loaded through bsa's loaders and sampled both by diffusers'
own AudioLDMPipeline and by bsa's sampler: the two must agree."""

import json

import numpy as np
import pytest
import torch
from _helpers import audioldm_ddim

pytest.importorskip("diffusers.pipelines.deprecated.audioldm")


def tiny_tokenizer(folder):
    from transformers import RobertaTokenizer

    words = ["a", "loud", "quiet", "siren", "bell", "dog", "barks"]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for w in words:
        vocab["Ġ" + w] = len(vocab)
        vocab[w] = len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=12)
    tok.save_pretrained(folder)
    return len(vocab)


@pytest.fixture(scope="module")
def audioldm_folder(tmp_path_factory):
    from diffusers import UNet2DConditionModel
    from transformers import (
        ClapTextConfig,
        ClapTextModelWithProjection,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    from bsa.models.autoencoder import build_vae
    from bsa.models.unet import audioldm_unet_config

    root = tmp_path_factory.mktemp("audioldm-tiny")
    torch.manual_seed(0)
    vocab = tiny_tokenizer(root / "tokenizer")
    ClapTextModelWithProjection(
        ClapTextConfig(
            vocab_size=vocab,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            projection_dim=8,
            max_position_embeddings=20,
        )
    ).save_pretrained(root / "text_encoder")
    UNet2DConditionModel(**audioldm_unet_config("tiny", 8, 8, (16, 16))).save_pretrained(root / "unet")
    build_vae("tiny").save_pretrained(root / "vae")
    SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=64,
            sampling_rate=16000,
            upsample_initial_channel=16,
            upsample_rates=[4, 4, 10],
            upsample_kernel_sizes=[8, 8, 20],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1]],
            normalize_before=False,
        )
    ).save_pretrained(root / "vocoder")
    audioldm_ddim(set_alpha_to_one=True).save_pretrained(root / "scheduler")
    return root


def test_audioldm_folder_loads_and_bsa_matches_audioldm_pipeline(audioldm_folder):
    from diffusers import DDIMScheduler
    from diffusers.pipelines.deprecated.audioldm import AudioLDMPipeline
    from transformers import RobertaTokenizer

    from bsa.diffusion import audioldm_schedule
    from bsa.models.autoencoder import load_vae
    from bsa.models.denoiser import Denoiser
    from bsa.models.pipeline import TextToAudio
    from bsa.models.text import ClapTextEncoder
    from bsa.models.unet import load_unet
    from bsa.models.vocoder import load_vocoder

    root = audioldm_folder
    text = ClapTextEncoder(root / "text_encoder")
    unet, vae, vocoder = load_unet(root / "unet"), load_vae(root / "vae"), load_vocoder(str(root / "vocoder"))
    pipe = AudioLDMPipeline(
        vae=vae,
        text_encoder=text.model,
        tokenizer=RobertaTokenizer.from_pretrained(root / "tokenizer"),
        unet=unet,
        scheduler=DDIMScheduler.from_pretrained(root / "scheduler"),
        vocoder=vocoder,
    )
    pipe.set_progress_bar_config(disable=True)
    captions = ["a loud siren", "a quiet dog barks"]
    noise = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(3))
    theirs = pipe(
        captions,
        num_inference_steps=4,
        guidance_scale=2.5,
        audio_length_in_s=0.64,
        latents=noise.clone(),
        output_type="pt",
    ).audios
    ours_pipe = TextToAudio(Denoiser(unet, audioldm_schedule()), vae, vocoder, text, text([""])[0])
    from bsa.diffusion import sample, step_grid

    z = sample(
        ours_pipe.denoiser,
        noise.clone(),
        step_grid(4),
        ours_pipe.schedule,
        cond=text(captions),
        null_cond=text([""])[0],
        guidance_scale=2.5,
    )
    ours = ours_pipe.waveforms(z)[:, : theirs.shape[1]]
    assert theirs.shape == (2, 10240)
    theirs = theirs.float().numpy()
    assert np.abs(theirs).max() > 0
    # a random tiny vocoder gives ~1e-9 amplitudes: the tolerance is relative to the signal
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())


def test_clap_text_encoder_identity_and_normalisation(audioldm_folder):
    from bsa.models.text import ClapTextEncoder

    enc = ClapTextEncoder(audioldm_folder / "text_encoder")
    emb = enc(["a loud siren", "a bell"])
    assert emb.shape == (2, 8) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert enc.identity["dim"] == 8 and enc.identity["name"] == "clap-text"


def test_exported_student_is_a_loadable_audioldm_pipeline(audioldm_folder, tmp_path):
    """A w-conditioned student exported with AudioLDM's components loads from its folder alone as
    DistilledAudioLDMPipeline; one UNet call per step, and it equals bsa's own sampler."""
    from bsa.diffusion import audioldm_schedule, sample, step_grid
    from bsa.models.audioldm_pipeline import DistilledAudioLDMPipeline
    from bsa.models.denoiser import Denoiser
    from bsa.models.export import read_stage, save_stage
    from bsa.models.text import ClapTextEncoder
    from bsa.models.unet import load_unet, with_guidance_input

    student = with_guidance_input(load_unet(audioldm_folder / "unet"))
    torch.nn.init.normal_(student.time_embedding.cond_proj.weight, std=0.05)  # make w matter
    sched = dict(
        num_train_timesteps=1000,
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
    )
    folder = save_stage(
        tmp_path / "stage03_4steps",
        student,
        {"num_sample_steps": 4, "stage": 3},
        audioldm_folder / "vae",
        str(audioldm_folder / "vocoder"),
        sched,
        audioldm_folder / "text_encoder",
    )
    assert read_stage(folder)["num_sample_steps"] == 4 and (folder / "model_index.json").is_file()
    pipe = DistilledAudioLDMPipeline.from_pretrained(folder)
    calls = []
    pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    noise = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(5))
    captions = ["a loud siren", "a bell"]
    audio = pipe(
        captions, guidance_scale=3.0, audio_length_in_s=0.64, latents=noise.clone(), output_type="pt"
    ).audios
    assert len(calls) == 4, "4 steps, one UNet call each (stored num_sample_steps, guidance as input)"
    text = ClapTextEncoder(audioldm_folder / "text_encoder")
    den = Denoiser(pipe.unet, audioldm_schedule())
    w = torch.full((2,), 3.0)
    z = sample(lambda x, t: den(x, t, text(captions), w), noise.clone(), step_grid(4), den.schedule)
    with torch.no_grad():
        ours = pipe.mel_spectrogram_to_waveform(pipe.decode_latents(z))[:, : audio.shape[1]]
    assert audio.abs().max() > 0
    np.testing.assert_allclose(ours.numpy(), audio.numpy(), rtol=1e-4, atol=1e-4 * audio.abs().max().item())
    other = pipe(
        captions, guidance_scale=1.5, audio_length_in_s=0.64, latents=noise.clone(), output_type="pt"
    ).audios
    assert (other - audio).abs().max() > 1e-2 * audio.abs().max(), "the guidance scale reaches the student"
    # the graphed sampler (eager on the CPU) gives the same clips, through one kept denoiser
    graphed = pipe(
        captions,
        guidance_scale=3.0,
        audio_length_in_s=0.64,
        latents=noise.clone(),
        output_type="pt",
        cuda_graphs=True,
    ).audios
    assert torch.equal(graphed, audio) and pipe._graphed.module is pipe._denoiser()


def test_exported_4_step_student_of_a_200_step_base_samples_on_its_training_grid(audioldm_folder, tmp_path):
    """A 4-step student distilled from a 200-step base was trained on [999, 679, 359, 39] (the
    nested grid), not step_grid(4) = [999, 749, 499, 249]; loaded from its folder alone, the
    pipeline samples on the grid stored with it, and says so when asked for another step count."""
    from bsa.diffusion import sampling_grid, step_grid
    from bsa.models.audioldm_pipeline import DistilledAudioLDMPipeline
    from bsa.models.export import save_stage
    from bsa.models.unet import load_unet, with_guidance_input

    trained = sampling_grid(4, 200).tolist()
    assert trained == [999, 679, 359, 39] != step_grid(4).tolist()
    folder = save_stage(
        tmp_path / "stage06_4steps",
        with_guidance_input(load_unet(audioldm_folder / "unet")),
        {"stage": 6, "mode": "progressive", "num_sample_steps": 4, "base_steps": 200, "timesteps": trained},
        audioldm_folder / "vae",
        str(audioldm_folder / "vocoder"),
        dict(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear"),
        audioldm_folder / "text_encoder",
    )
    pipe = DistilledAudioLDMPipeline.from_pretrained(folder)
    seen = []
    pipe.unet.register_forward_pre_hook(lambda m, args: seen.append(int(args[1].flatten()[0])))
    pipe("a bell", audio_length_in_s=0.64, generator=torch.Generator().manual_seed(0))
    assert seen == trained
    seen.clear()
    with pytest.warns(UserWarning, match="distilled for 4 steps.*sampling it at 8 steps"):
        pipe(
            "a bell",
            num_inference_steps=8,
            audio_length_in_s=0.64,
            generator=torch.Generator().manual_seed(0),
        )
    assert seen == sampling_grid(8, 200).tolist()
