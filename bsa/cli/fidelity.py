"""``bsa fidelity RUN [RUN ...] --out results/fidelity``

The fidelity summary of one recipe run on several seeds (one distillation run folder per seed):
per student step count, the paired CLAP and attribute-accuracy differences to the teacher and the
FAD against the teacher beside the teacher-vs-teacher floor, each with its 95 % interval. Writes
summary.json and summary.md; ``--command`` records the command that made the runs. ``--against
REF_RUN ...``: also the paired differences to another recipe's runs on the same seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bsa.report.records import write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser("bsa fidelity", description=__doc__.strip().splitlines()[2])
    parser.add_argument("runs", nargs="+", help="distillation run folders (runs/<run>), one per seed")
    parser.add_argument("--out", default="results/fidelity", help="folder for summary.json and summary.md")
    parser.add_argument("--command", default="", help="the command that produced the runs (recorded)")
    parser.add_argument("--against", nargs="+", default=[], help="another recipe's runs: paired differences")
    args = parser.parse_args(argv)
    from bsa.report.fidelity import fidelity_summary, format_fidelity, recipe_differences
    from bsa.report.records import final_records

    missing = [r for r in args.runs + args.against if not (Path(r) / "eval.jsonl").is_file()]
    if missing:
        print(f"bsa fidelity: {missing[0]}/eval.jsonl: no such file", file=sys.stderr)
        return 2
    runs = [(r, final_records(Path(r) / "eval.jsonl")) for r in args.runs]
    try:
        summary = fidelity_summary([records for _, records in runs])
        if args.against:
            against = [(r, final_records(Path(r) / "eval.jsonl")) for r in args.against]
            summary["differences"] = {"against": args.against, "steps": recipe_differences(runs, against)}
    except ValueError as e:
        print(f"bsa fidelity: {e}", file=sys.stderr)
        return 2
    text = write_summary(
        args.out,
        summary,
        format_fidelity,
        command=args.command or "bsa fidelity " + " ".join(argv if argv is not None else sys.argv[1:]),
        runs=[str(x) for x in args.runs],
    )
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
