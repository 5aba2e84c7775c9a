"""The commands' shared argument parser: ``<preset.yaml ...> [key=value ...] [--dry-run]`` → a validated
BsaConfig. (What turns a config into work lives in ``bsa.experiment``.)"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

from bsa.config import BsaConfig, ConfigError, load_config, split_items


def config_parser(
    prog: str, description: str, epilog: str = "", choice: tuple[str, tuple[str, ...]] | None = None
) -> argparse.ArgumentParser:
    """``[CHOICE] CONFIG.yaml ... key=value ... [--dry-run]``; ``choice`` = (name, allowed values)."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog, formatter_class=fmt)
    if choice is not None:
        parser.add_argument(choice[0], choices=choice[1])
    parser.add_argument(
        "items",
        nargs="*",
        metavar="CONFIG.yaml | key=value",
        help="experiment YAML files (merged in order over the schema), then key=value overrides",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate the config, print the plan, and stop"
    )
    return parser


def run_with_config(args: argparse.Namespace, body: Callable[[BsaConfig, argparse.Namespace], int]) -> int:
    """Load the config from ``args.items`` and run ``body``. A config error, or a file or model
    folder that is not there, is one line naming the key or the path, and exit 2."""
    try:
        files, overrides = split_items(args.items)
        cfg = load_config(files, overrides)
    except ConfigError as e:
        print(f"bsa: config error: {e}", file=sys.stderr)
        return 2
    try:
        return body(cfg, args)
    except FileNotFoundError as e:
        print(f"bsa: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # Lightning's SIGTERMException is a SystemExit without a code: status 0
        if type(e).__name__ != "SIGTERMException":
            raise
        print("bsa: stopped by SIGTERM; run the same command again to continue", file=sys.stderr)
        return 128 + signal.SIGTERM
