"""``bsa dashboard experiments/embedded-gpu.yaml [compare.id=...]``

Rebuild the static HTML dashboard of a weighting comparison (runs/compare/<id>/dashboard/index.html)
from its runs' records.
"""

from __future__ import annotations

import argparse
import sys

from bsa.cli.common import config_parser, run_with_config
from bsa.config import BsaConfig


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    from bsa.experiment.compare import compare_dir
    from bsa.report.dashboard import build_dashboard

    out = compare_dir(cfg)
    if args.dry_run:
        print(f"would build {out / 'dashboard' / 'index.html'}")
        return 0
    try:
        print(build_dashboard(out, cfg))
    except FileNotFoundError as e:
        print(f"bsa dashboard: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = config_parser("bsa dashboard", __doc__.strip().splitlines()[2])
    return run_with_config(parser.parse_args(argv), _main)


if __name__ == "__main__":
    sys.exit(main())
