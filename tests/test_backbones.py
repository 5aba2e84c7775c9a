"""The real evaluation backbones (frechet-audio-distance, laion-clap): missing weights are clear
errors, and with weights on disk (random ones built here under the library's own file names) the
library's code runs, offline, and feeds the suite."""

import os
import socket

import pytest
import torch

from bsa.config import ConfigError, load_config
from bsa.metrics.backbones import FAD_MODELS, BackboneUnavailable, FadLibraryBackbone, LaionClap, offline_hub

offline_hub()  # before the tests below import the libraries themselves


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (the backbones must never download)."""

    def refuse(*a, **k):
        raise AssertionError("a backbone tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_offline_hub_holds_when_huggingface_hub_was_imported_before(monkeypatch):
    """diffusers (imported by every bsa process, and by these tests) loads huggingface_hub, which
    reads HF_HUB_OFFLINE once: setting the variable afterwards alone leaves the hub online, and
    laion-clap's import then retried a tokenizer download for minutes."""
    import diffusers  # noqa: F401
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    offline_hub()
    assert huggingface_hub.is_offline_mode() and os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("name", sorted(FAD_MODELS))
def test_missing_fad_checkpoint_names_the_file(tmp_path, name, no_network):
    with pytest.raises(BackboneUnavailable, match=rf"{name}.*{tmp_path}/.*missing.*never downloads"):
        FadLibraryBackbone(name, tmp_path)


def test_missing_laion_clap_checkpoint_names_the_file(tmp_path, no_network):
    with pytest.raises(BackboneUnavailable, match=r"laion-clap.*630k-audioset-best.pt is missing"):
        LaionClap(tmp_path / "630k-audioset-best.pt")


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="eval.fad_backbone.*'vgish'"):
        load_config(["experiments/debug.yaml"], ["eval.fad_backbone=vgish"])


def _tone_and_noise(n: int = 3, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(16000 * seconds)) / 16000
    g = torch.Generator().manual_seed(0)
    return torch.stack(
        [0.3 * torch.sin(2 * torch.pi * 440 * (k + 1) * t) for k in range(n)]
    ) + 0.01 * torch.randn(n, t.shape[0], generator=g)


def test_pann_backbone_runs_the_library_model_from_disk(tmp_path, no_network):
    """CNN14 (16 kHz) with random weights saved as the library's checkpoint: 2048-d embeddings
    through its get_embeddings, and a class distribution for IS."""
    from frechet_audio_distance.models.pann import Cnn14_16k

    torch.manual_seed(0)
    model = Cnn14_16k(
        sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000, classes_num=527
    )
    torch.save({"model": model.state_dict()}, tmp_path / FAD_MODELS["pann"]["files"][0])
    backbone = FadLibraryBackbone("pann", tmp_path)
    waves = _tone_and_noise()
    emb = backbone.embed(waves)
    assert emb.shape == (3, 2048) and torch.isfinite(emb).all()
    with torch.no_grad():  # the same numbers as the model we saved, called directly
        expected = model.eval()(waves, None)["embedding"]
    torch.testing.assert_close(emb, expected, rtol=1e-4, atol=1e-5)
    probs = backbone.class_probs(waves)
    assert probs.shape == (3, 527)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, dtype=probs.dtype))


def test_encodec_backbone_and_the_suite_use_it_for_fad(tmp_path, no_network):
    """EnCodec 24 kHz with random weights under the library's download name: one embedding per
    frame; an EvaluationSuite with it reports FAD on those embeddings and names it."""
    from encodec import EncodecModel

    from bsa.metrics.embedded import EmbeddedBackbone
    from bsa.metrics.suite import EvaluationSuite, score, stats_of
    from bsa.models.evaluator import AudioEvaluator

    torch.manual_seed(0)
    path = tmp_path / FAD_MODELS["encodec"]["files"][0]
    path.parent.mkdir(parents=True)
    torch.save(EncodecModel.encodec_model_24khz(pretrained=False).state_dict(), path)
    backbone = FadLibraryBackbone("encodec", tmp_path)
    waves = _tone_and_noise(2)
    emb = backbone.embed(waves)
    assert emb.shape == (2 * 75, 128)  # 75 frames per second at 24 kHz, 128-d

    suite = EvaluationSuite(EmbeddedBackbone(AudioEvaluator(text_dim=8, joint_dim=64).eval()), fad=backbone)
    features = suite.features(waves)
    assert torch.equal(features.embedding, emb)
    same = score(suite, features, torch.randn(2, 64), None, {"self": stats_of(features)})
    assert same["fad_self"] == pytest.approx(0.0, abs=1e-3)
    noise = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.5
    different = score(suite, suite.features(noise), torch.randn(2, 64), None, {"ref": stats_of(features)})
    assert different["fad_ref"] > 100 * max(same["fad_self"], 1e-9)
    assert suite.protocol()["fad_backbone"] == "frechet-audio-distance encodec @ 24000 Hz"
