"""What a compiled run pays for compiling, process by process (issue "Speed at AudioLDM scale": the
warm-up target is 90 s): one distillation step of the embedded model with regional compilation
(Inductor, the student's and the teacher's repeated blocks), in a fresh process with an empty
compile cache, then in a second fresh process with the cache the first one left (what a resumed or
requeued run finds in ``<paths.output_root>/.compile-cache``, bsa.experiment.build.use_compile_cache),
and within the first process the steps of two later stages' fresh modules (``bsa distill`` trains
its stages in one process). Seconds of the first step and the compiler's own counters (graphs
traced, FX-graph and AOTAutograd cache hits and misses) per case.
Writes results/compile-cache-cpu-<date>/summary.json.
    python experiments/cpu/compile_cache.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, time, torch
from torch._dynamo.utils import counters
from bsa.experiment.bench import _models, _progressive_module
cfg = _models()["embedded (3.2 M)"]
lat = torch.randn(4, cfg["in_channels"], *cfg["sample_size"])
text = torch.randn(4, cfg["projection_class_embeddings_input_dim"])
rows = []
for stage in range(3):  # a fresh module per stage, as bsa distill builds them, one process
    m = _progressive_module(cfg, compile={"mode": None, "backend": "inductor"}, compile_regions=True)
    before = {k: dict(v) for k, v in counters.items()}
    start = time.perf_counter()
    loss, _ = m.distillation_loss(lat, text)
    loss.backward()
    seconds = time.perf_counter() - start
    new = {f"{k}.{n}": c - before.get(k, {}).get(n, 0) for k, v in counters.items() for n, c in v.items()}
    keep = ("stats.unique_graphs", "inductor.fxgraph_cache_hit", "inductor.fxgraph_cache_miss",
            "aot_autograd.autograd_cache_hit", "aot_autograd.autograd_cache_miss")
    rows.append({"stage": stage, "first_step_s": seconds, **{k: new.get(k, 0) for k in keep}})
print(json.dumps(rows))
"""


def child(cache: str) -> list[dict]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold = child(cache)  # an empty cache
        warm = child(cache)  # the cache the first process left
    summary = {
        "cold_process": cold,
        "warm_cache_process": warm,
        "cold_first_step_s": cold[0]["first_step_s"],
        "warm_cache_first_step_s": warm[0]["first_step_s"],
        "later_stages_graphs": [r["stats.unique_graphs"] for r in cold[1:]],
        "device": f"{platform.processor() or 'cpu'}, {os.cpu_count()} cores (this CPU; Inductor's C++ kernels)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python experiments/cpu/compile_cache.py",
    }
    out = Path(f"results/compile-cache-cpu-{time.strftime('%Y-%m-%d', time.gmtime())}/summary.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
