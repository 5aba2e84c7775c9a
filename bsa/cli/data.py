"""``python -m bsa.cli.data experiments/embedded-cpu.yaml``: generate the embedded data set.

Writes data.root/{train,val,test}.csv (AudioCaps layout + ground-truth attributes),
data.root/audio/{split}/*.wav and data.root/DATASET.json (config + sha256).
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.data.embedded import EmbeddedDatasetConfig, generate_dataset

    d = cfg.data
    if d.dataset != "embedded":
        print(
            f"bsa data: data.dataset={d.dataset!r} is brought by the user; only the embedded set is generated",
            file=sys.stderr,
        )
        return 2
    gen = EmbeddedDatasetConfig(
        seed=d.seed, train=d.train_clips, val=d.val_clips, test=d.test_clips, duration=d.clip_seconds
    )
    print(f"embedded data set → {d.root}: {gen}")
    if args.dry_run:
        return 0
    info = generate_dataset(d.root, gen, workers=d.num_workers)
    print(f"wrote {sum(info['counts'].values())} clips, sha256 {info['sha256'][:16]}…, {d.root}/DATASET.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_with_config(config_parser("bsa data", __doc__.strip().splitlines()[0]).parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
