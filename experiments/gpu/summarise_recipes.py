"""results/teacher-recipes-2026-11-27/summary.json from the records the three device calls brought
back (`bsa evaluate`'s metrics.json, the models' training.json, the throughput probe):

    python experiments/gpu/summarise_recipes.py results/teacher-recipes-2026-11-27
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEYS = ("fad_real", "clap", "is", "acc_mean", "acc_pitch", "acc_source", "acc_rhythm", "silence_floor_dbfs")

CALLS = {
    "call1-recipes": "bash experiments/gpu/teacher_recipe.sh  (teachers A, B and the vocoder trained side by side, 4 min each)",
    "call2-shipped-teacher": "bash experiments/gpu/vocoder_check.sh  (first vocoder; shipped teacher; throughput probe)",
    "call3-vocoder": "SKIP_PROBE=1 SKIP_GL=1 MINUTES=3.0 VOC_CLIPS=8000 bash experiments/gpu/vocoder_check.sh",
    "call4-teacher-12m": "PHASE=1 STEPS=8000 MIN1=4.5 bash experiments/gpu/teacher_long.sh; then, on the warm machine, "
    "PHASE=2 MAX_MIN=9 bash experiments/gpu/teacher_long.sh  (one 12 M teacher trained across two device calls, "
    "resident batches, compiled, bf16)",
    "call5-teacher-small": 'RUN=runs/teacher-small RECIPE="train.teacher.size=embedded train.teacher.batch_size=512 '
    "train.teacher.lr=1e-3 train.teacher.weighting=min_snr train.teacher.ema_decay=0.9995 trainer.precision=bf16-mixed "
    'trainer.compile=default data.resident=true" PHASE=1 STEPS=6000 MIN1=0 MAX_MIN=5.5 bash experiments/gpu/teacher_long.sh; '
    "PHASE=2 bash experiments/gpu/teacher_long.sh  (one call; training ended by max_minutes at step 5454 of 6000; "
    "the teacher shipped in bsa/assets/teacher, fp16)",
}


def main(folder: Path) -> None:
    rows, trainings = [], {}
    for call, command in CALLS.items():
        d = folder / call
        device = (d / "device.txt").read_text().splitlines()
        for f in sorted(d.glob("eval_*.json")):
            m = json.loads(f.read_text())
            for name, r in m["results"].items():
                rows.append(
                    {
                        "call": call,
                        "run": f.stem,
                        "row": name,
                        "model": m["protocol"]["model"],
                        **{k: r[k] for k in KEYS if k in r},
                    }
                )
        for f in sorted(d.glob("*.training.json")):
            t = json.loads(f.read_text())
            curve = t["curve"]
            trainings[f"{call}/{f.name.split('.')[0]}"] = {
                "seconds": t["trained_for_seconds"],
                "optimizer_steps": max(c["step"] for c in curve),
                "last_val": [c for c in curve if c["kind"] == "val"][-1],
            }
        protocol = json.loads(next(d.glob("eval_*.json")).read_text())["protocol"]
        trainings.setdefault("_calls", {})[call] = {
            "command": command,
            "device": device[0],
            "date": device[1],
            "num_clips": protocol["num_clips"],
            "seeds": protocol["seeds"],
            "guidance_scale": protocol["guidance_scale"],
        }
    probe = json.loads((folder / "call2-shipped-teacher" / "throughput.json").read_text())
    out = {
        "issue": "A benchmark worth distilling (call 5 trained the shipped teacher)",
        "calls": trainings.pop("_calls"),
        "evaluations": rows,
        "trainings": trainings,
        "teacher_training_throughput": probe,
        # call 4: the 12 M teacher's steps/s through `bsa train teacher`, 20 s each (bf16, batch 512);
        # the compiled variant's warm-up outlasted its window
        "teacher_training_throughput_resident": [
            json.loads(line)
            for line in (folder / "call4-teacher-12m" / "throughput_probe.jsonl").read_text().splitlines()
        ],
    }
    (folder / "summary.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))


ROWS = (  # (label, call, run, row)
    ("real clips (ceiling)", "call2-shipped-teacher", "eval_gl", "real clips (ceiling)"),
    ("real → VAE → Griffin-Lim", "call2-shipped-teacher", "eval_gl", "real → VAE → vocoder"),
    ("real → VAE → HiFi-GAN (3 min)", "call3-vocoder", "eval_hifi", "real → VAE → vocoder"),
    ("shuffled captions (floor)", "call2-shipped-teacher", "eval_gl", "shuffled captions (floor)"),
    ("previous teacher @ 200", "call2-shipped-teacher", "eval_gl", "model @ 200 steps"),
    (
        "recipe A @ 200 (3.2 M, Min-SNR, batch 1024, 1212 steps)",
        "call1-recipes",
        "eval_A_gl",
        "model @ 200 steps",
    ),
    (
        "recipe B @ 200 (12 M, Min-SNR, batch 1024, 947 steps)",
        "call1-recipes",
        "eval_B_gl",
        "model @ 200 steps",
    ),
    (
        "recipe C @ 200 (12 M, Min-SNR, batch 512, lr 1e-3 cosine, 8000 steps)",
        "call4-teacher-12m",
        "eval_large_gl",
        "model @ 200 steps",
    ),
    (
        "**recipe C, 3.2 M UNet @ 200 (5454 steps): shipped**",
        "call5-teacher-small",
        "eval_small_gl",
        "model @ 200 steps",
    ),
)


def table(summary: dict) -> str:
    """The table of this exploration (docs/results/teacher.md), from summary.json."""
    cols = ("fad_real", "clap", "acc_source", "acc_pitch", "acc_rhythm", "acc_mean", "silence_floor_dbfs")
    lines = [
        "| | FAD vs real | CLAP | source acc | pitch acc | rhythm acc | mean acc | silence floor (dBFS) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, call, run, row in ROWS:
        r = next(e for e in summary["evaluations"] if (e["call"], e["run"], e["row"]) == (call, run, row))
        lines.append(f"| {label} | " + " | ".join(f"{r[c]:.3f}" if c in r else "–" for c in cols) + " |")
    return "\n".join(lines)
