"""Why regional compilation of the 185 M UNet warms up slowly (issue "Speed at AudioLDM scale":
199 s on an H200 against a target of 90): how many graphs dynamo compiles for one distillation
step — the teacher's forward at 2B without gradients, the student's forward and backward at B —
with static shapes and with dynamic ones (``dynamic=True``, parameters' shapes not forced static),
and the student's step alone.
Traced with the aot_eager backend (no kernels generated): the count, not the time, is the point.
Writes results/bench/<date>-regional-graphs-cpu.json.
    python experiments/cpu/regional_graphs.py
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import json, sys, time
import torch, torch._dynamo
from torch._dynamo.utils import counters
from diffusers import UNet2DConditionModel
from bsa.experiment.bench import AUDIOLDM_S
from bsa.models.unet import compile_repeated_blocks
dynamic = sys.argv[1] == "dynamic"
torch.manual_seed(0)
student = UNet2DConditionModel(**AUDIOLDM_S)
teacher = UNet2DConditionModel(**AUDIOLDM_S).eval().requires_grad_(False)
kw = {"backend": "aot_eager"}
if dynamic:
    torch._dynamo.config.force_parameter_static_shapes = False
    torch._dynamo.config.assume_static_by_default = False
    kw["dynamic"] = True
for m in (student, teacher):
    compile_repeated_blocks(m, **kw)
B, graphs = 2, []
for step in range(2):
    z = torch.randn(2 * B, 8, 256, 16)
    with torch.no_grad():
        if sys.argv[2] == "both":
            teacher(z, torch.randint(0, 1000, (2 * B,)), encoder_hidden_states=None, class_labels=torch.randn(2 * B, 512))
    out = student(z[:B], torch.randint(0, 1000, (B,)), encoder_hidden_states=None, class_labels=torch.randn(B, 512)).sample
    out.square().mean().backward()
    graphs.append(counters["stats"]["unique_graphs"])
print(json.dumps({"shapes": sys.argv[1], "calls": sys.argv[2], "unique_graphs_after_step": graphs}))
"""


def main() -> int:
    rows = []
    # a process each (dynamo's caches and counters are global); "student": its step alone, no teacher
    for shapes, calls in (("static", "both"), ("dynamic", "both"), ("static", "student")):
        start = time.time()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, shapes, calls], capture_output=True, text=True, timeout=1200
        )
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(
            {**json.loads(out.stdout.strip().splitlines()[-1]), "seconds": round(time.time() - start, 1)}
        )
        print(rows[-1], flush=True)
    import torch

    result = {
        "rows": rows,
        "model": "AudioLDM-s-sized UNet (185 M), bsa.experiment.bench.AUDIOLDM_S, student + teacher",
        "blocks": "bsa.models.unet.REPEATED_BLOCKS",
        "backend": "aot_eager",
        "device": f"CPU ({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores)",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "command": "python experiments/cpu/regional_graphs.py",
    }
    out_file = Path("results/bench") / f"{result['date']}-regional-graphs-cpu.json"
    out_file.write_text(json.dumps(result, indent=1) + "\n")
    print(f"→ {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
