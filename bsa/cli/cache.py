"""``python -m bsa.cli.cache experiments/embedded-cpu.yaml``: encode the data set into the latent cache.

Audio → mono 16 kHz → log-mel → VAE latents; captions → text embeddings; shards + manifest under
data.cache_dir. Interrupt it and run it again: finished shards are kept. Several workers (machines
or processes) split the shards with --worker-index/--worker-count; the last one to finish writes
the manifest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bsa.cli.common import config_parser, run_with_config, torch_device
from bsa.config import BsaConfig


def cache_identity(cfg: BsaConfig, vae, text_encoder):
    from bsa.audio import MelParams, num_samples_for
    from bsa.data.manifest import CacheIdentity
    from bsa.models.autoencoder import latent_shape, vae_identity

    mel = MelParams()
    frames = mel.frames(num_samples_for(cfg.data.clip_seconds, mel.sample_rate))
    return CacheIdentity(
        mel=mel.as_dict(),
        clip_seconds=cfg.data.clip_seconds,
        vae=vae_identity(vae, cfg.models.vae),
        text_encoder=text_encoder.identity,
        latent_shape=latent_shape(vae, frames, mel.n_mels),
    )


def build_expected_identity(cfg: BsaConfig):
    """The identity a cache must have for the configured VAE and text encoder."""
    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import load_vae
    from bsa.models.text import load_text_encoder

    return cache_identity(
        cfg, load_vae(resolve_model_path(cfg.models.vae)), load_text_encoder(cfg.models.text_encoder)
    )


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.data.encode import SplitSource, build_cache
    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import encode_mel, load_vae
    from bsa.models.text import load_text_encoder

    root = Path(cfg.data.root)
    splits = {s: SplitSource(root / f"{s}.csv", root / "audio" / s) for s in cfg.data.splits}
    print(f"latent cache: {root} → {cfg.data.cache_dir} (splits {', '.join(splits)})")
    if args.dry_run:
        return 0

    vae = load_vae(resolve_model_path(cfg.models.vae))
    vae = vae.to(torch_device(cfg))
    text = load_text_encoder(cfg.models.text_encoder)
    info_path = root / "DATASET.json"
    result = build_cache(
        splits,
        cfg.data.cache_dir,
        cache_identity(cfg, vae, text),
        lambda mel: encode_mel(vae, mel),
        text,
        shard_size=cfg.data.shard_size,
        batch_size=cfg.data.encode_batch_size,
        worker_index=args.worker_index,
        worker_count=args.worker_count,
        min_seconds=cfg.data.min_seconds,
        dataset_info=json.loads(info_path.read_text()) if info_path.is_file() else None,
    )
    print(result.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa cache", __doc__.strip().splitlines()[0])
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--worker-count", type=int, default=1)
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
