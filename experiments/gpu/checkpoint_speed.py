"""What a population's periodic checkpoint costs the training (issue "A weighting study…": the seed-5
block's progress bars showed 2.5–4 s per 200 steps at each ``last.ckpt`` of its 17 students, ~1 GB):
the same state written in line (``DurableCheckpointIO``: serialise, write, fsync, rename) against
``BackgroundCheckpointIO`` — the seconds until its save returns (the caller's copy to the host: what
the training still waits for) and until the write is on disk. K students with teachers of their own,
AdamW's state after one step, the EMA; one JSON line per way.
  python3 experiments/gpu/checkpoint_speed.py --out $OUT/checkpoint_speed.jsonl [--population 17]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._pytree import tree_leaves

from bsa.callbacks.checkpoint import BackgroundCheckpointIO, DurableCheckpointIO
from bsa.diffusion import audioldm_schedule
from bsa.models.assets import resolve_model_path
from bsa.models.unet import load_unet, with_guidance_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--population", type=int, default=17)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from profile_speed import module  # the population of the profile's measurement

    device = "cuda" if torch.cuda.is_available() else "cpu"
    unet = with_guidance_input(load_unet(resolve_model_path("embedded:teacher")))
    text_dim = unet.config.projection_class_embeddings_input_dim
    m = module(unet, audioldm_schedule(), text_dim, 2, args.population, ema_decay=0.999).to(device).train()
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(8, unet.config.in_channels, *unet.config.sample_size, generator=g).to(device)
    text = torch.randn(8, text_dim, generator=g).to(device)
    opt = m.configure_optimizers()["optimizer"]
    loss, _ = m.distillation_loss(latents, text)
    loss.backward()
    opt.step()
    m.ema.update(m.student)
    checkpoint = {"state_dict": m.state_dict(), "optimizer_states": [opt.state_dict()], "global_step": 1}
    size = sum(t.numel() * t.element_size() for t in tree_leaves(checkpoint) if isinstance(t, torch.Tensor))
    with tempfile.TemporaryDirectory(dir=".") as folder, open(args.out, "w") as out:
        for way in ("in line", "background"):
            for _ in range(args.repeat):
                path = Path(folder) / "last.ckpt"
                io = (
                    DurableCheckpointIO()
                    if way == "in line"
                    else BackgroundCheckpointIO(DurableCheckpointIO(), path)
                )
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                io.save_checkpoint(checkpoint, path)
                returned = time.perf_counter() - start
                io.teardown()
                row = {
                    "way": way,
                    "population": args.population,
                    "bytes": size,
                    "returned_s": returned,
                    "on_disk_s": time.perf_counter() - start,
                    "file_bytes": path.stat().st_size,
                    "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                    "torch": torch.__version__,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                }
                print(json.dumps(row), flush=True)
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
