"""Evaluation and generation with any model folder (``eval.model``: a teacher or an exported stage).

``evaluate_model`` generates the evaluation set's captions with the model at eval.steps and scores FAD (against the
real clips), IS, CLAP score and attribute accuracy with the embedded evaluator; with
eval.baselines also the real clips (ceiling), their VAE + vocoder reconstruction, and real clips
scored against shuffled captions (the floor of a model that ignores its caption). Writes
eval.out/metrics.json, the model's per-clip scores to eval.out/per_clip.json and appends to
eval.out/metrics.csv (``write_evaluation``).
``generate_clips``: captions in, wav files out.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

from bsa.config import BsaConfig
from bsa.experiment.build import torch_device, use_compile_cache


def model_in_use(cfg: BsaConfig) -> str:
    """The model `bsa generate` and `bsa evaluate` sample: ``eval.model``, else ``models.teacher``."""
    return cfg.eval.model or cfg.models.teacher


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

    model_path = resolve_model_path(model_in_use(cfg))
    base_steps, stage = cfg.distill.teacher_steps, None
    if is_stage_folder(model_path):  # an exported distillation stage: its own unet/, vae/ and grid
        stage = read_stage(model_path)
        base_steps = stage.get("base_steps", base_steps)
        vae, model_path = load_vae(model_path / "vae"), model_path / "unet"
    unet = load_unet(model_path).eval().requires_grad_(False)
    null = text([""])[0].float()
    use_compile_cache(cfg)
    pipe = TextToAudio(
        Denoiser(unet, schedule, (stage or {}).get("prediction_type", s.prediction_type)),
        vae,
        load_vocoder(cfg.models.vocoder),
        text,
        null,
        base_steps,
        stage,
        compile=cfg.trainer.sampling_compile_kwargs(cfg.eval.compile),
        cuda_graphs=cfg.eval.cuda_graphs,
        guidance_interval=tuple(cfg.eval.guidance_interval) or None,
    )
    return pipe.to(device), torch.device(device)


def teacher_reference(cfg: BsaConfig) -> str | None:
    """The model whose outputs "FAD vs teacher" compares with: distill.reference_teacher, else the
    shipped embedded teacher for the embedded data set; None when that is the model being scored
    at the teacher's own step count, with eval.paired false, or without a teacher to compare with."""
    from bsa.models.assets import resolve_model_path

    ref = cfg.distill.reference_teacher or ("embedded:teacher" if cfg.data.dataset == "embedded" else "")
    if not ref or not cfg.eval.paired:
        return None
    try:
        same = resolve_model_path(ref).resolve() == resolve_model_path(model_in_use(cfg)).resolve()
    except (FileNotFoundError, OSError):
        return None
    sampled_as_teacher = cfg.eval.steps == cfg.distill.teacher_steps and not cfg.eval.guidance_interval
    return None if same and sampled_as_teacher else ref


def evaluate_model(
    cfg: BsaConfig, command: str = "bsa evaluate"
) -> tuple[dict, dict[str, dict[str, float]], dict[str, list[float]]]:
    """(protocol, results, per_clip): the model in use at eval.steps and, with eval.baselines, the
    real clips, their reconstruction and the shuffled-caption floor, scored on eval.num_clips
    captions; ``per_clip``: the model's scores of each clip in the captions' order (CLAP, each
    head's correctness, the noise floor — as a distillation record keeps them). ``command``: what
    the protocol records as the command that made it."""
    import torch
    from tqdm.auto import tqdm

    from bsa.audio import load_clip, log_mel, num_samples_for
    from bsa.callbacks.evaluation import OTHER_NOISE, waveform_protocol
    from bsa.data.audiocaps import read_caption_csv, resolve_audio
    from bsa.data.embedded import LABELS
    from bsa.experiment.build import build_suite
    from bsa.metrics.frechet import frechet_from_stats
    from bsa.metrics.paired import paired_per_clip, per_clip_scores, summarise_paired
    from bsa.metrics.scores import clip_levels, clip_noise_floor_db, silence_floor
    from bsa.metrics.suite import score, stats_of
    from bsa.models.autoencoder import encode_mel

    e = cfg.eval
    root = Path(cfg.data.root)
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

        from bsa.experiment.build import load_denoiser

        # the teacher as it is sampled: guidance at every step
        teacher_pipe = replace(pipe, denoiser=load_denoiser(cfg, reference).eval(), guidance_interval=None)
        teacher_pipe.denoiser.to(dev)
        steps = cfg.distill.teacher_steps

        def teacher_outputs(clip_seeds: list[int], what: str):
            latents = torch.cat(
                [
                    teacher_pipe.latents(
                        text_emb[i : i + e.batch_size],
                        clip_seeds[i : i + e.batch_size],
                        steps,
                        e.guidance_scale,
                    ).cpu()
                    for i in tqdm(range(0, len(rows), e.batch_size), desc=f"{what} at {steps} steps")
                ]
            )
            return latents, torch.cat(
                [teacher_pipe.waveforms(z.to(dev)) for z in latents.split(e.batch_size)]
            )

        teacher_latents, teacher_waves = teacher_outputs(seeds, "teacher reference")
        teacher_features = backbone.features(teacher_waves)
        refs["teacher"] = stats_of(teacher_features)
        if e.teacher_floor:  # the teacher against itself with other initial noise: no model can be closer
            _, other_waves = teacher_outputs([s + OTHER_NOISE for s in seeds], "teacher, other noise")
            teacher_floor = frechet_from_stats(stats_of(backbone.features(other_waves)), refs["teacher"])
    results = {}
    if e.baselines:
        results["real clips (ceiling)"] = score(backbone, real_features, text_joint, targets, refs)
        results["real clips (ceiling)"].update(silence_floor(clip_noise_floor_db(real), captions))
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
        results["real → VAE → vocoder"].update(silence_floor(clip_noise_floor_db(recon), captions))
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
    start, waves, latents = time.time(), [], []
    for i in tqdm(range(0, len(rows), e.batch_size), desc=f"generating at {e.steps} steps"):
        z = pipe.latents(
            text_emb[i : i + e.batch_size], seeds[i : i + e.batch_size], e.steps, e.guidance_scale
        )
        latents.append(z.cpu())
        waves.append(pipe.waveforms(z))
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - start
    name = f"model @ {e.steps} steps"
    waves = torch.cat(waves)
    features = backbone.features(waves)
    results[name] = score(backbone, features, text_joint, targets, refs)
    levels = clip_levels(waves)
    results[name].update(silence_floor(levels["noise_floor_db"], captions))
    per_clip = {
        k: [round(float(x), 6) for x in v]
        for k, v in (per_clip_scores(features, text_joint, targets) | levels).items()
    }
    if reference is not None:  # paired with the teacher: same caption, same noise, same guidance
        paired = paired_per_clip(
            torch.cat(latents),
            teacher_latents,
            log_mel(waves),
            log_mel(teacher_waves),
            features,
            teacher_features,
            text_joint,
            targets,
        )
        results[name].update(summarise_paired(paired, seed=e.seed))
        if e.teacher_floor:
            results[name].update(
                fad_teacher_floor=teacher_floor,
                fad_teacher_ratio=results[name]["fad_teacher"] / teacher_floor,
            )
    nfe = pipe.network_calls(e.steps, e.guidance_scale)
    results[name].update({"nfe": nfe, "seconds_per_clip": seconds / len(rows)})
    protocol = {
        **backbone.protocol(),
        "sample_rate": 16000,
        "num_clips": len(rows),
        "split": e.split,
        "seeds": [seeds[0], seeds[-1]],
        "guidance_scale": e.guidance_scale,
        **({"guidance_interval": list(e.guidance_interval)} if e.guidance_interval else {}),
        "waveform": waveform_protocol(pipe.vocoder),
        "model": model_in_use(cfg),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
    }
    return protocol, results, per_clip


def write_evaluation(
    out: str | Path, protocol: dict, results: dict[str, dict[str, float]], per_clip: dict | None = None
) -> Path:
    """metrics.json (this evaluation), per_clip.json (the model's per-clip scores, with the protocol)
    and a row per result appended to metrics.csv."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"protocol": protocol, "results": results}, indent=2) + "\n")
    if per_clip is not None:
        (out / "per_clip.json").write_text(json.dumps({"protocol": protocol, "per_clip": per_clip}) + "\n")
    keys = sorted({k for r in results.values() for k in r})
    new = not (out / "metrics.csv").exists()
    with open(out / "metrics.csv", "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["row", *keys])
        for row, r in results.items():
            w.writerow([row, *[f"{r[k]:.4f}" if k in r else "" for k in keys]])
    return out / "metrics.json"


def generate_clips(
    cfg: BsaConfig, captions: list[str], seed: int, steps: int, guidance: float, out: str | Path
) -> Path:
    """One wav per caption from the model in use (clip i from noise seed ``seed + i``) and a
    captions.csv listing them; returns the folder."""
    from bsa.audio import write_wav

    pipe, _ = load_pipeline(cfg, torch_device(cfg))
    seeds = [seed + i for i in range(len(captions))]
    waves = pipe.generate(captions, seeds, steps, guidance)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "captions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption", "seed", "steps", "guidance_scale"])
        for i, (caption, wave) in enumerate(zip(captions, waves, strict=True)):
            name = f"{i:03d}_{re.sub(r'[^a-z0-9]+', '_', caption.lower()).strip('_')[:48]}.wav"
            write_wav(out / name, wave, 16000)
            w.writerow([name, caption, seeds[i], steps, guidance])
    return out
