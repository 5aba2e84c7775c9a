"""How K distillation processes share one GPU (issue "A weighting study…": `make compare` runs
its weightings as separate processes side by side): each process builds the embedded model's
progressive step as `bsa distill` runs it, waits for a common start time, steps for WINDOW
seconds and prints its samples/s; the sum over the K processes is the GPU's aggregate rate.
  python experiments/gpu/parallel_throughput.py --start-at EPOCH --window 20 --graphs
"""

import argparse
import json
import time

import torch
from diffusers import UNet2DConditionModel

from bsa.diffusion import audioldm_schedule
from bsa.experiment.bench import _models
from bsa.lit.distill import DistillationModule
from bsa.models.denoiser import Denoiser
from bsa.models.unet import with_guidance_input

p = argparse.ArgumentParser()
p.add_argument("--start-at", type=float, required=True)
p.add_argument("--window", type=float, default=20.0)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--graphs", action="store_true")
a = p.parse_args()
cfg = _models()["embedded (3.2 M)"]
schedule = audioldm_schedule()
torch.manual_seed(0)
unet = with_guidance_input(UNet2DConditionModel(**cfg))
m = DistillationModule(
    Denoiser(unet, schedule).requires_grad_(False),
    Denoiser(with_guidance_input(UNet2DConditionModel(**cfg)), schedule, "v_prediction"),
    torch.zeros(cfg["projection_class_embeddings_input_dim"]),
    mode="progressive",
    student_steps=25,
    ema_decay=0.999,
    cuda_graphs=a.graphs,
).cuda()
opt = torch.optim.AdamW(m.student.parameters(), lr=1e-4, fused=True)
lat = torch.randn(a.batch, cfg["in_channels"], *cfg["sample_size"], device="cuda")
text = torch.randn(a.batch, cfg["projection_class_embeddings_input_dim"], device="cuda")


def step():
    loss, _ = m.distillation_loss(lat, text)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    m.ema.update(m.student)


for _ in range(3):
    step()
torch.cuda.synchronize()
time.sleep(max(0.0, a.start_at - time.time()))
start, n = time.time(), 0
while time.time() - start < a.window:
    step()
    n += 1
torch.cuda.synchronize()
elapsed = time.time() - start
print(
    json.dumps({"graphs": a.graphs, "steps": n, "seconds": elapsed, "samples_per_s": n * a.batch / elapsed})
)
