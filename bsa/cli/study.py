"""``bsa study COMPARISON [COMPARISON ...] --out results/weighting-study``

The weighting study's summary of one or more comparisons (``bsa compare`` folders, e.g. the
25-step and the 4-step block): per student step count (25, 4) and weighting, CLAP, attribute
accuracy and FAD vs teacher with their 95 % intervals, and each weighting's paired difference to
bsa. Writes summary.json and summary.md; ``--command`` records the command that made the runs.
"""

from __future__ import annotations

import argparse
import sys

from bsa.report.records import write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser("bsa study", description=__doc__.strip().splitlines()[2])
    parser.add_argument("comparisons", nargs="+", help="comparison folders (runs/compare/<id>)")
    parser.add_argument(
        "--out", default="results/weighting-study", help="folder for summary.json and summary.md"
    )
    parser.add_argument("--reference", default="bsa", help="the weighting the differences are taken to")
    parser.add_argument("--command", default="", help="the command that produced the comparisons (recorded)")
    args = parser.parse_args(argv)
    from bsa.report.records import comparison_profiles, comparison_records
    from bsa.report.study import format_study, paired_fad_differences, study_summary

    by_folder, profiles = {}, []
    for folder in args.comparisons:
        profiles += comparison_profiles(folder)
        by_folder[folder] = comparison_records(folder)
        if not by_folder[folder]:
            print(f"bsa study: {folder}: no */eval.jsonl records (not a comparison folder?)", file=sys.stderr)
            return 2
    records = [r for found in by_folder.values() for r in found]
    try:
        fad = paired_fad_differences(by_folder, args.reference)
        summary = study_summary(records, args.reference, profiles=profiles, fad_differences=fad)
    except ValueError as e:
        print(f"bsa study: {e}", file=sys.stderr)
        return 2
    text = write_summary(
        args.out,
        summary,
        format_study,
        command=args.command or "bsa study " + " ".join(argv if argv is not None else sys.argv[1:]),
        comparisons=[str(x) for x in args.comparisons],
    )
    print(text, end="")
    if summary["not_reached"]:
        print(f"not reached by these comparisons: {summary['not_reached']} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
