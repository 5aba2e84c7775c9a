"""``bsa data experiments/embedded-cpu.yaml``: generate the embedded data set.

Writes data.root/{train,val,test}.csv (AudioCaps layout + ground-truth attributes),
data.root/audio/{split}/*.wav and data.root/DATASET.json (config + sha256).
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.data import embedded_dataset_config, generate_embedded_dataset

    d = cfg.data
    if d.dataset != "embedded":
        print(
            f"bsa data: data.dataset={d.dataset!r} is brought by the user; only the embedded set is generated",
            file=sys.stderr,
        )
        return 2
    print(f"embedded data set → {d.root}: {embedded_dataset_config(cfg)}")
    if args.dry_run:
        return 0
    info = generate_embedded_dataset(cfg)
    print(f"wrote {sum(info['counts'].values())} clips, sha256 {info['sha256'][:16]}…, {d.root}/DATASET.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_with_config(config_parser("bsa data", __doc__.strip().splitlines()[0]).parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
