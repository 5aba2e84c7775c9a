"""Evaluation backbones beyond the embedded evaluator (SPEC §6): frechet-audio-distance's FAD
models and laion-clap's CLAP score, used when their checkpoints are on disk.

Nothing here downloads. Each backbone checks, before it touches the library, that the files the
library would otherwise fetch are in the configured folder, and raises ``BackboneUnavailable``
naming the missing file. ``frechet_audio_distance`` and ``laion_clap`` try the network when they
are imported (a tokenizer download with retries), so they are imported inside the constructors,
with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

INPUT_RATE = 16000  # what bsa generates

FAD_MODELS: dict[str, dict] = {
    # name → sample rate the library requires, and the files it would download into ckpt_dir
    "vggish": {
        "rate": 16000,
        "files": ["harritaylor_torchvggish_master/hubconf.py", "checkpoints/vggish-10086976.pth"],
    },
    "pann": {"rate": 16000, "files": ["Cnn14_16k_mAP%3D0.438.pth"]},
    "clap": {"rate": 48000, "files": ["630k-audioset-best.pt"]},
    "encodec": {"rate": 24000, "files": ["checkpoints/encodec_24khz-d7cc33bc.th"]},
}


class BackboneUnavailable(FileNotFoundError):
    """A backbone's weights are not on disk (and bsa never downloads them)."""


def offline_hub() -> None:
    """Hugging Face Hub offline for this process, before laion-clap or frechet-audio-distance is
    imported: the environment variables, and the hub's own flag where ``huggingface_hub`` is loaded
    already — it reads ``HF_HUB_OFFLINE`` once at import, and diffusers imports it first in every
    bsa process, after which the variable alone is ignored and a tokenizer lookup retries the
    network for minutes."""
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def _require(folder: Path, names: list[str], what: str, how: str) -> None:
    for name in names:
        if not (folder / name).is_file():
            raise BackboneUnavailable(
                f"{what}: {folder / name} is missing; bsa never downloads weights at run time. {how}"
            )


def resample(waves: torch.Tensor, rate: int) -> torch.Tensor:
    """[N, L] at 16 kHz → [N, L'] at ``rate`` (torchaudio's band-limited resampler)."""
    import torchaudio.functional as AF

    return waves if rate == INPUT_RATE else AF.resample(waves, INPUT_RATE, rate)


class FadLibraryBackbone:
    """One of frechet-audio-distance's embedding models (vggish, pann, clap, encodec).

    ``ckpt_dir`` is the library's own ``ckpt_dir`` (its torch-hub folder), holding the files of
    ``FAD_MODELS[name]["files"]`` under their download names. Embeddings come from the library's
    ``get_embeddings`` (encodec: one row per frame, as the library models them); with ``pann`` the
    CNN14 AudioSet classifier's clip probabilities also give the Inception Score.

    Security: ``vggish`` is built by torch.hub from ``<ckpt_dir>/harritaylor_torchvggish_master/
    hubconf.py``, i.e. by *running Python code from that folder* (as the library itself does); its
    checkpoints are then read by that code with ``torch.load``. Point ``eval.backbone_dir`` only at
    a folder you trust, as you would a ``pip install``.
    """

    def __init__(self, name: str, ckpt_dir: str | Path):
        if name not in FAD_MODELS:
            raise ValueError(
                f"unknown FAD backbone {name!r}; expected one of {sorted(FAD_MODELS)} or 'embedded'"
            )
        spec, folder = FAD_MODELS[name], Path(ckpt_dir)
        _require(
            folder,
            spec["files"],
            f"FAD backbone {name!r}",
            f"Put frechet-audio-distance's {name} checkpoint there (eval.backbone_dir={folder}).",
        )
        offline_hub()
        from frechet_audio_distance import FrechetAudioDistance

        self.name, self.sample_rate = name, spec["rate"]
        if name == "vggish":
            # the library calls torch.hub.load("harritaylor/torchvggish"), which asks GitHub for the
            # default branch even when the repository is cached: load the cached copy as a local repo
            # and set it up exactly as the library does (no PCA, no final activation).
            fad = FrechetAudioDistance.__new__(FrechetAudioDistance)
            fad.model_name, fad.sample_rate, fad.verbose = name, self.sample_rate, False
            fad.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            torch.hub.set_dir(str(folder))
            model = torch.hub.load(str(folder / "harritaylor_torchvggish_master"), "vggish", source="local")
            model.postprocess = False
            model.embeddings = torch.nn.Sequential(*list(model.embeddings.children())[:-1])
            model.device = fad.device
            fad.model = model.to(fad.device).eval()
        else:
            fad = FrechetAudioDistance(ckpt_dir=str(folder), model_name=name, sample_rate=self.sample_rate)
        self.fad = fad

    @property
    def description(self) -> str:
        return f"frechet-audio-distance {self.name} @ {self.sample_rate} Hz"

    def embed(self, waves: torch.Tensor) -> torch.Tensor:
        """waves [N, L] at 16 kHz → embeddings [M, D] (M = N, or frames for encodec)."""
        x = resample(waves.float().cpu(), self.sample_rate)
        rows = []
        for w in x:  # one clip at a time: pann gives a flat [2048] per clip, which would run together
            e = torch.as_tensor(self.fad.get_embeddings([w.numpy()], sr=self.sample_rate)).float()
            rows.append(e.reshape(1, -1) if e.ndim == 1 else e.reshape(-1, e.shape[-1]))
        return torch.cat(rows)

    @torch.no_grad()
    def class_probs(self, waves: torch.Tensor) -> torch.Tensor | None:
        """AudioSet class distribution [N, 527] from CNN14 (pann only), else ``None``: its clip-wise
        sigmoid outputs normalised to sum to one, the usual IS input for PANNs (AudioLDM's evaluation)."""
        if self.name != "pann":
            return None
        x = resample(waves.float(), self.sample_rate).to(self.fad.device)
        p = torch.cat([self.fad.model(c, None)["clipwise_output"].float().cpu() for c in x.split(32)])
        return p / p.sum(-1, keepdim=True).clamp_min(1e-12)


class LaionClap:
    """CLAP score with a laion-clap checkpoint (HTSAT-tiny audio tower, RoBERTa text tower at 48 kHz).

    The model's text tower tokenizes with ``roberta-base`` from the Hugging Face cache; it must be
    there too (laion-clap fetches it by name).
    """

    sample_rate = 48000

    def __init__(self, checkpoint: str | Path, amodel: str = "HTSAT-tiny", enable_fusion: bool = False):
        path = Path(checkpoint)
        _require(
            path.parent,
            [path.name],
            "laion-clap CLAP score",
            "Set eval.clap_checkpoint to a laion-clap .pt file on disk (e.g. 630k-audioset-best.pt).",
        )
        offline_hub()
        import laion_clap

        try:
            self.model = laion_clap.CLAP_Module(enable_fusion=enable_fusion, amodel=amodel)
        except OSError as e:  # roberta-base not in the HF cache and HF_HUB_OFFLINE forbids fetching it
            raise BackboneUnavailable(
                f"laion-clap CLAP score: its text tower needs the 'roberta-base' tokenizer and config in the "
                f"Hugging Face cache ({e.__class__.__name__}: {str(e).splitlines()[0]})"
            ) from e
        self.model.load_ckpt(str(path), verbose=False)
        self.description = f"laion-clap {amodel} {path.name}"

    @torch.no_grad()
    def audio_embed(self, waves: torch.Tensor) -> torch.Tensor:
        x = resample(waves.float().cpu(), self.sample_rate)
        return torch.cat(
            [
                self.model.get_audio_embedding_from_data(x=c, use_tensor=True).float().cpu()
                for c in x.split(32)
            ]
        )

    @torch.no_grad()
    def text_embed(self, captions: list[str]) -> torch.Tensor:
        return self.model.get_text_embedding(list(captions), use_tensor=True).float().cpu()
