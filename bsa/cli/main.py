"""``bsa <task> ...``: dispatch to ``bsa.cli.<task>``."""

from __future__ import annotations

import importlib
import sys

TASKS = {
    "data": "generate the embedded captioned data set (AudioCaps layout)",
    "cache": "encode audio + captions into the latent cache",
    "train": "train an embedded model from scratch: vae, teacher, evaluator or vocoder",
    "generate": "captions in, wav files out, any model folder, any step count",
    "evaluate": "score a model at N steps: FAD, IS, CLAP score, attribute accuracy",
    "compare": "one distillation per loss weighting (and seed) from the same teacher, then results + dashboard",
    "dashboard": "the static HTML dashboard of a comparison",
    "bench": "sampling speed-up and distillation throughput (GPU for absolute numbers)",
    "distill": "progressively distil the teacher down to distill.target_steps",
    "fidelity": "the fidelity summary of distillation runs: paired differences to the teacher, FAD over its floor",
    "study": "the weighting study's summary of comparisons: scores and paired differences to bsa, per weighting",
    "text_embeddings": "precompute the captions' text embeddings (models.text_encoder=precomputed:FILE)",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: bsa <task> [CONFIG.yaml ...] [key=value ...] [--dry-run]\n\ntasks:")
        for name, what in TASKS.items():
            print(f"  {name:<10} {what}")
        return 0 if argv else 2
    task, rest = argv[0], argv[1:]
    if task not in TASKS:
        print(f"bsa: unknown task {task!r}; expected one of {', '.join(TASKS)}", file=sys.stderr)
        return 2
    return importlib.import_module(f"bsa.cli.{task}").main(rest)


if __name__ == "__main__":
    sys.exit(main())
