"""After a distillation run: score every stage against the teacher on fixed captions and seeds,
and write the summary a person reads first."""

from __future__ import annotations

import time
from pathlib import Path

from bsa.cli.common import torch_device
from bsa.config import BsaConfig


def _test_captions(cfg: BsaConfig, n: int):
    """The first n clips of the cached test split: captions, text embeddings, attribute labels."""
    import torch

    from bsa.data.datamodule import LatentShardStream
    from bsa.data.manifest import CacheManifest

    manifest = CacheManifest.read(cfg.data.cache_dir)
    split = "test" if "test" in manifest.splits else next(iter(manifest.splits))
    items = []
    for item in LatentShardStream(cfg.data.cache_dir, split, manifest, shuffle=False, rank=0, world_size=1):
        items.append(item)
        if len(items) == n:
            break
    return (
        [i["caption"] for i in items],
        torch.stack([i["text_emb"] for i in items]),
        [i["meta"] for i in items],
    )


def evaluate_stages(cfg: BsaConfig, result: dict) -> list[dict]:
    import torch

    from bsa.data.embedded import LABELS
    from bsa.metrics.embedded import EmbeddedBackbone
    from bsa.metrics.suite import score, stats_of
    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import load_vae
    from bsa.models.denoiser import Denoiser
    from bsa.models.evaluator import AudioEvaluator
    from bsa.models.export import is_stage_folder
    from bsa.models.pipeline import TextToAudio
    from bsa.models.unet import load_unet
    from bsa.models.vocoder import load_vocoder

    d, s = cfg.distill, cfg.schedule
    try:
        evaluator = AudioEvaluator.from_pretrained(
            resolve_model_path(cfg.models.evaluator), low_cpu_mem_usage=False
        ).eval()
    except (FileNotFoundError, OSError) as e:
        print(f"no stage evaluation: {e}")
        return []
    device = torch_device(cfg)
    backbone = EmbeddedBackbone(evaluator.to(device))
    captions, text_emb, meta = _test_captions(cfg, d.eval_clips)
    targets = (
        {k: torch.tensor([LABELS[k].index(m[k]) for m in meta]) for k in LABELS}
        if meta and all(k in meta[0] for k in LABELS)
        else None
    )
    seeds = [cfg.eval.seed + i for i in range(len(captions))]
    schedule = s.build()
    vae, vocoder = load_vae(resolve_model_path(cfg.models.vae)), load_vocoder(cfg.models.vocoder)
    null = torch.tensor(result["stages"][0]["metadata"]["null_text_embedding"]) if result["stages"] else None

    def run(unet_folder, steps, label, nfe_per_step):
        pipe = TextToAudio(
            Denoiser(load_unet(unet_folder).eval(), schedule, s.prediction_type),
            vae,
            vocoder,
            None,
            null,
            d.teacher_steps,
        ).to(device)
        start = time.time()
        waves = pipe.waveforms(pipe.latents(text_emb, seeds, steps, d.guidance_scale))
        seconds = (time.time() - start) / len(captions)
        return label, waves, {"steps": steps, "nfe": steps * nfe_per_step, "seconds_per_clip": seconds}

    teacher_path = resolve_model_path(cfg.models.teacher)
    teacher_unet = teacher_path / "unet" if is_stage_folder(teacher_path) else teacher_path
    label, ref_waves, info = run(teacher_unet, d.teacher_steps, f"teacher @ {d.teacher_steps} (CFG)", 2)
    ref_features = backbone.features(ref_waves)
    refs = {"teacher": stats_of(ref_features)}
    rows = [{"row": label, **info, **score(backbone, ref_features, text_emb, targets, refs)}]
    for st in result["stages"]:
        spec = st["spec"]
        w_cond = st["metadata"].get("w_conditioned", False)
        label, waves, info = run(
            Path(st["folder"]) / "unet",
            spec.student_steps,
            f"stage {spec.index} student @ {spec.student_steps}",
            1 if w_cond else 2,
        )
        rows.append(
            {
                "row": label,
                "folder": str(st["folder"]),
                **info,
                **score(backbone, backbone.features(waves), text_emb, targets, refs),
            }
        )
    return rows


def format_summary(cfg: BsaConfig, result: dict, rows: list[dict], seconds: float) -> str:
    lines = [
        f"# bsa distillation — {Path(result['run_dir']).name}",
        "",
        f"{cfg.distill.plan.describe()}, weighting {cfg.distill.weighting}, {seconds / 60:.1f} min"
        f" (this invocation), {cfg.distill.eval_clips} test captions, seeds from {cfg.eval.seed}.",
        "",
    ]
    if rows:
        lines += [
            "| model | steps | NFE | FAD vs teacher | CLAP | attribute acc | s/clip |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['row']} | {r['steps']} | {r['nfe']} | {r.get('fad_teacher', 0):.2f} | {r['clap']:.3f} | "
                f"{r.get('acc_mean', float('nan')):.3f} | {r['seconds_per_clip']:.3f} |"
            )
        lines.append("")
    last = result["stages"][-1]["folder"] if result["stages"] else None
    for st in result["stages"]:
        lines.append(
            f"- stage {st['spec'].index} ({st['spec'].mode}, {st['spec'].student_steps} steps): {st['folder']}"
        )
    if last:
        lines += [
            "",
            "Generate with the final student:",
            f"    python -m bsa.cli.generate experiments/{cfg.preset}.yaml models.teacher={last} "
            f'--steps {result["stages"][-1]["spec"].student_steps} --caption "A loud high-pitched siren plays continuously in silence"',
        ]
    return "\n".join(lines)
