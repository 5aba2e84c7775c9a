"""``bsa cache experiments/embedded-cpu.yaml``: encode the data set into the latent cache.

Audio → mono 16 kHz → log-mel → VAE latents; captions → text embeddings; shards + manifest under
data.cache_dir. Interrupt it and run it again: finished shards are kept. Several workers (machines
or processes) split the shards with --worker-index/--worker-count; the last one to finish writes
the manifest.
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.data import build_latent_cache

    print(f"latent cache: {cfg.data.root} → {cfg.data.cache_dir} (splits {', '.join(cfg.data.splits)})")
    if args.dry_run:
        return 0
    print(build_latent_cache(cfg, args.worker_index, args.worker_count).summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa cache", __doc__.strip().splitlines()[0])
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--worker-count", type=int, default=1)
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
