"""``bsa study COMPARISON [COMPARISON ...] --out results/weighting-study``

The weighting study's summary of one or more comparisons (``bsa compare`` folders): per step count
(25, 4) and weighting, CLAP, attribute accuracy and FAD vs teacher with 95 % intervals and the paired
difference to bsa → summary.json, .md, map.html (heat maps); FAD differences also ``--fad-differences``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser("bsa study", description=__doc__.strip().splitlines()[2])
    parser.add_argument("comparisons", nargs="+", help="comparison folders (runs/compare/<id>)")
    parser.add_argument(
        "--out", default="results/weighting-study", help="folder of summary.json, .md, map.html"
    )
    parser.add_argument("--reference", default="bsa", help="the weighting the differences are taken to")
    parser.add_argument("--command", default="", help="the command that produced the comparisons (recorded)")
    parser.add_argument(
        "--fad-differences", nargs="*", default=[], metavar="SUMMARY",
        help="summaries written where the runs' embeddings were: their paired FAD differences",
    )  # fmt: skip
    parser.add_argument(
        "--agreement", nargs="*", default=[], metavar="SUMMARY",
        help="other study summaries (other seeds): how far their maps' differences agree with this one's",
    )  # fmt: skip
    parser.add_argument("--fad-partial", action="store_true", help="FAD differences of fewer seeds, named")
    args = parser.parse_args(argv)
    from bsa.experiment.compare import write_study
    from bsa.report.study import study_of_comparisons

    try:
        summary = study_of_comparisons(
            args.comparisons, args.reference, args.fad_differences, args.agreement, args.fad_partial
        )
    except ValueError as e:
        print(f"bsa study: {e}", file=sys.stderr)
        return 2
    text = write_study(
        args.out,
        summary,
        args.command or "bsa study " + " ".join(argv if argv is not None else sys.argv[1:]),
        args.comparisons,
        fad_differences=args.fad_differences,
    )
    print(text, end="")
    if summary["not_reached"]:
        print(f"not reached by these comparisons: {summary['not_reached']} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
