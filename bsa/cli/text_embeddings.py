"""``bsa text-embeddings experiments/embedded-gpu.yaml``: embed every caption of the embedded data
set with the configured text encoder into ``.carry/text_embeddings.pt``.

For machines that cannot hold the text encoder (the GPU machine takes 64 MiB per call): the file
carries the encoder's identity, so a latent cache built from it matches one built with the encoder.
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.data import embedded_captions, save_caption_embeddings

    print(f"{len(set(embedded_captions(cfg)))} distinct captions → {args.out}")
    if args.dry_run:
        return 0
    save_caption_embeddings(cfg, args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa text-embeddings", __doc__.strip().splitlines()[0])
    parser.add_argument("--out", default=".carry/text_embeddings.pt")
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
