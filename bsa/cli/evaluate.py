"""``python -m bsa.cli.evaluate experiments/embedded-gpu.yaml eval.steps=200 [models.teacher=FOLDER]``

Generate the evaluation set's captions with the model at eval.steps and score FAD (against the
real clips), IS, CLAP score and attribute accuracy with the embedded evaluator; with
eval.baselines also the real clips (ceiling), their VAE + vocoder reconstruction, and real clips
scored against shuffled captions (the floor of a model that ignores its caption). Writes
eval.out/metrics.json and appends to eval.out/metrics.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from bsa.cli.common import config_parser, run_with_config, torch_device
from bsa.config import BsaConfig


def load_pipeline(cfg: BsaConfig, device: str):
    import torch

    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import load_vae
    from bsa.models.denoiser import Denoiser
    from bsa.models.pipeline import TextToAudio
    from bsa.models.text import load_text_encoder
    from bsa.models.unet import load_unet
    from bsa.models.vocoder import load_vocoder

    s = cfg.schedule
    schedule = s.build()
    text = load_text_encoder(cfg.models.text_encoder)
    vae = load_vae(resolve_model_path(cfg.models.vae))
    from bsa.models.export import is_stage_folder, read_stage

    model_path = resolve_model_path(cfg.models.teacher)
    grid_base, stage = cfg.distill.teacher_steps, None
    if is_stage_folder(model_path):  # an exported distillation stage: its own unet/, vae/ and grid
        stage = read_stage(model_path)
        grid_base = stage.get("base_steps", grid_base)
        vae, model_path = load_vae(model_path / "vae"), model_path / "unet"
    unet = load_unet(model_path).eval().requires_grad_(False)
    null = text([""])[0].float()
    pipe = TextToAudio(
        Denoiser(unet, schedule, s.prediction_type),
        vae,
        load_vocoder(cfg.models.vocoder),
        text,
        null,
        grid_base,
        stage,
    )
    return pipe.to(device), torch.device(device)


def teacher_reference(cfg: BsaConfig) -> str | None:
    """The model whose outputs "FAD vs teacher" compares with: distill.reference_teacher, else the
    shipped embedded teacher for the embedded data set; None when that is the model being scored
    at the teacher's own step count (or there is no teacher to compare with)."""
    from bsa.models.assets import resolve_model_path

    ref = cfg.distill.reference_teacher or ("embedded:teacher" if cfg.data.dataset == "embedded" else "")
    if not ref:
        return None
    try:
        same = resolve_model_path(ref).resolve() == resolve_model_path(cfg.models.teacher).resolve()
    except (FileNotFoundError, OSError):
        return None
    return None if same and cfg.eval.steps == cfg.distill.teacher_steps else ref


def _main(cfg: BsaConfig, args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from bsa.audio import load_clip, log_mel, num_samples_for
    from bsa.data.audiocaps import read_caption_csv, resolve_audio
    from bsa.data.embedded import LABELS
    from bsa.metrics.suite import build_suite, score, stats_of
    from bsa.models.autoencoder import encode_mel

    e = cfg.eval
    root = Path(cfg.data.root)
    print(
        f"evaluating {cfg.models.teacher} at {e.steps} steps, guidance {e.guidance_scale}, on {e.num_clips} "
        f"{e.split} captions of {root}"
    )
    if args.dry_run:
        return 0
    device = torch_device(cfg)
    pipe, dev = load_pipeline(cfg, device)
    backbone = build_suite(cfg, device)

    rows, _ = read_caption_csv(root / f"{e.split}.csv")
    rows = rows[: e.num_clips]
    n = num_samples_for(cfg.data.clip_seconds)
    real = torch.stack([load_clip(resolve_audio(root / "audio" / e.split, r), 16000, n).wave for r in rows])
    captions = [r.caption for r in rows]
    text_emb = pipe.text_encoder(captions).float().cpu()
    text_joint = backbone.text_joint(text_emb, captions)
    has_labels = all(k in rows[0].extra for k in LABELS)
    targets = (
        {k: torch.tensor([LABELS[k].index(r.extra[k]) for r in rows]) for k in LABELS} if has_labels else None
    )
    real_features = backbone.features(real)
    refs = {"real": stats_of(real_features)}
    seeds = [e.seed + i for i in range(len(rows))]
    reference = teacher_reference(cfg)
    if reference is not None:  # FAD against the teacher's outputs for the same captions and seeds
        from dataclasses import replace

        from bsa.cli.common import load_denoiser

        teacher_pipe = replace(pipe, denoiser=load_denoiser(cfg, reference).eval())
        teacher_pipe.denoiser.to(dev)
        steps = cfg.distill.teacher_steps
        ref_waves = [
            teacher_pipe.waveforms(
                teacher_pipe.latents(
                    text_emb[i : i + e.batch_size], seeds[i : i + e.batch_size], steps, e.guidance_scale
                )
            )
            for i in tqdm(range(0, len(rows), e.batch_size), desc=f"teacher reference at {steps} steps")
        ]
        refs["teacher"] = stats_of(backbone.features(torch.cat(ref_waves)))
    results = {}
    if e.baselines:
        results["real clips (ceiling)"] = score(backbone, real_features, text_joint, targets, refs)
        with torch.no_grad():
            recon = torch.cat(
                [
                    pipe.waveforms(
                        encode_mel(pipe.vae, log_mel(w.to(dev)).unsqueeze(1)) * pipe.vae.config.scaling_factor
                    )
                    for w in real.split(e.batch_size)
                ]
            )
        results["real → VAE → vocoder"] = score(backbone, backbone.features(recon), text_joint, targets, refs)
        perm = torch.roll(torch.arange(len(rows)), 1)  # a derangement: every clip gets another's caption
        floor = score(
            backbone,
            real_features,
            text_joint[perm],
            {k: v[perm] for k, v in targets.items()} if targets else None,
            refs,
        )
        floor.pop("fad_real")
        results["shuffled captions (floor)"] = floor
    start, waves = time.time(), []
    for i in tqdm(range(0, len(rows), e.batch_size), desc=f"generating at {e.steps} steps"):
        waves.append(
            pipe.generate(
                captions[i : i + e.batch_size], seeds[i : i + e.batch_size], e.steps, e.guidance_scale
            )
        )
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - start
    name = f"model @ {e.steps} steps"
    results[name] = score(backbone, backbone.features(torch.cat(waves)), text_joint, targets, refs)
    nfe = e.steps * (1 if pipe.denoiser.takes_guidance or e.guidance_scale == 1 else 2)
    results[name].update({"nfe": nfe, "seconds_per_clip": seconds / len(rows)})
    protocol = {
        **backbone.protocol(),
        "sample_rate": 16000,
        "num_clips": len(rows),
        "split": e.split,
        "seeds": [seeds[0], seeds[-1]],
        "guidance_scale": e.guidance_scale,
        "model": cfg.models.teacher,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "date": time.strftime("%Y-%m-%d"),
    }
    out = Path(e.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"protocol": protocol, "results": results}, indent=2) + "\n")
    keys = sorted({k for r in results.values() for k in r})
    new = not (out / "metrics.csv").exists()
    with open(out / "metrics.csv", "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["row", *keys])
        for row, r in results.items():
            w.writerow([row, *[f"{r[k]:.4f}" if k in r else "" for k in keys]])
    print(format_table(results))
    return 0


def format_table(results: dict[str, dict[str, float]]) -> str:
    cols = [
        "fad_real",
        "clap",
        "is",
        "acc_source",
        "acc_pitch",
        "acc_rhythm",
        "acc_mean",
        "nfe",
        "seconds_per_clip",
    ]
    cols = [c for c in cols if any(c in r for r in results.values())]
    lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row, r in results.items():
        lines.append(f"| {row} | " + " | ".join(f"{r[c]:.3f}" if c in r else "–" for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_with_config(
        config_parser("bsa evaluate", __doc__.strip().splitlines()[0]).parse_args(argv), _main
    )


if __name__ == "__main__":
    sys.exit(main())
