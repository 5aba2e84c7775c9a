"""``python -m bsa.cli.text_embeddings experiments/embedded-gpu.yaml``: embed every caption of the
embedded data set with the configured text encoder into ``.carry/text_embeddings.pt``.

For machines that cannot hold the text encoder (the GPU machine takes 64 MiB per call): the file
carries the encoder's identity, so a latent cache built from it matches one built with the encoder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.data.embedded import SPLITS, EmbeddedDatasetConfig, clip_spec
    from bsa.models.text import load_text_encoder, save_precomputed

    d = cfg.data
    gen = EmbeddedDatasetConfig(
        seed=d.seed, train=d.train_clips, val=d.val_clips, test=d.test_clips, duration=d.clip_seconds
    )
    captions = [clip_spec(gen.seed, s, i)[0].caption for s in SPLITS for i in range(gen.size(s))]
    out = Path(args.out)
    print(f"{len(set(captions))} distinct captions → {out}")
    if args.dry_run:
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    save_precomputed(load_text_encoder(cfg.models.text_encoder), captions, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa text-embeddings", __doc__.strip().splitlines()[0])
    parser.add_argument("--out", default=".carry/text_embeddings.pt")
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
