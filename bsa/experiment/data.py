"""The data a run needs: the embedded data set (from its seed), the latent cache, and the caption
embeddings carried to machines that cannot hold the text encoder."""

from __future__ import annotations

import json
from pathlib import Path

from bsa.config import BsaConfig


def embedded_dataset_config(cfg: BsaConfig):
    """The embedded generator's settings from ``cfg.data``."""
    from bsa.data.embedded import EmbeddedDatasetConfig

    d = cfg.data
    return EmbeddedDatasetConfig(
        seed=d.seed, train=d.train_clips, val=d.val_clips, test=d.test_clips, duration=d.clip_seconds
    )


def generate_embedded_dataset(cfg: BsaConfig) -> dict:
    """Write the embedded data set under ``data.root``; returns its DATASET.json."""
    from bsa.data.embedded import generate_dataset

    return generate_dataset(cfg.data.root, embedded_dataset_config(cfg), workers=cfg.data.num_workers)


def split_sources(cfg: BsaConfig, splits=None) -> dict:
    """{split: SplitSource} of the caption CSVs and audio folders under ``data.root``."""
    from bsa.data.encode import SplitSource

    root = Path(cfg.data.root)
    return {s: SplitSource(root / f"{s}.csv", root / "audio" / s) for s in (splits or cfg.data.splits)}


def build_latent_cache(cfg: BsaConfig, worker_index: int = 0, worker_count: int = 1):
    """Encode the splits into the latent cache (resumable; workers split the shards)."""
    from bsa.data.encode import build_cache
    from bsa.experiment.build import cache_identity, torch_device
    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import encode_mel, load_vae
    from bsa.models.text import load_text_encoder

    vae = load_vae(resolve_model_path(cfg.models.vae)).to(torch_device(cfg))
    text = load_text_encoder(cfg.models.text_encoder)
    info_path = Path(cfg.data.root) / "DATASET.json"
    return build_cache(
        split_sources(cfg),
        cfg.data.cache_dir,
        cache_identity(cfg, vae, text),
        lambda mel: encode_mel(vae, mel),
        text,
        shard_size=cfg.data.shard_size,
        batch_size=cfg.data.encode_batch_size,
        worker_index=worker_index,
        worker_count=worker_count,
        min_seconds=cfg.data.min_seconds,
        dataset_info=json.loads(info_path.read_text()) if info_path.is_file() else None,
    )


def embedded_captions(cfg: BsaConfig) -> list[str]:
    """Every caption of the embedded data set, from its seed (no audio generated)."""
    from bsa.data.embedded import SPLITS, caption_labels

    gen = embedded_dataset_config(cfg)
    return [c for s in SPLITS for c in caption_labels(gen.seed, s, gen.size(s), ("caption",))["caption"]]


def save_caption_embeddings(cfg: BsaConfig, out: str | Path) -> Path:
    """Every caption's embedding, float16 (what the latent cache stores), for the GPU machine."""
    import torch

    from bsa.models.text import load_text_encoder, save_precomputed

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_precomputed(
        load_text_encoder(cfg.models.text_encoder), embedded_captions(cfg), out, dtype=torch.float16
    )
    return out
