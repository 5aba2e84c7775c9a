"""Issue "A benchmark worth distilling", the vocoder's figures: the real test clips through
log-mel → VAE → each vocoder (and, with --without-vae, log-mel → vocoder alone), scored by the
embedded evaluator against the real clips: FAD vs real, CLAP, attribute accuracy, and the noise
floor (dBFS) of the clips whose caption says "in silence". Writes results/vocoder/summary.json.
--vocoder true-magnitude: the bound of every mel → magnitude vocoder ahead of Griffin-Lim — the
real clip's own STFT magnitude through the same Griffin-Lim (on the real clips only: it has no mel
to start from).
    python experiments/cpu/vocoder_reconstruction.py experiments/embedded-cpu.yaml --clips 1000 \
        --vocoder griffin-lim --vocoder runs/magvoc
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="+", help="preset files and key=value overrides")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--vocoder", action="append", required=True, help="griffin-lim or a vocoder folder")
    parser.add_argument("--without-vae", action="store_true", help="also the vocoders on the real mels")
    parser.add_argument("--out", default="results/vocoder/summary.json")
    args = parser.parse_args()
    from tqdm.auto import tqdm

    from bsa.audio import load_clip, log_mel, num_samples_for
    from bsa.config import load_config
    from bsa.data.audiocaps import read_caption_csv, resolve_audio
    from bsa.data.embedded import LABELS
    from bsa.experiment.build import build_suite
    from bsa.metrics.scores import clip_noise_floor_db, silence_floor
    from bsa.metrics.suite import score, stats_of
    from bsa.models.assets import resolve_model_path
    from bsa.models.autoencoder import decode_latents, encode_mel, load_vae
    from bsa.models.vocoder import load_vocoder

    files = [a for a in args.config if "=" not in a]
    cfg = load_config(files, [a for a in args.config if "=" in a])
    root = Path(cfg.data.root)
    rows, _ = read_caption_csv(root / "test.csv")
    rows = rows[: args.clips]
    n = num_samples_for(cfg.data.clip_seconds)
    real = torch.stack([load_clip(resolve_audio(root / "audio" / "test", r), 16000, n).wave for r in rows])
    captions = [r.caption for r in rows]
    suite = build_suite(cfg, "cpu")
    text_emb = _text_embeddings(cfg, captions)
    text_joint = suite.text_joint(text_emb, captions)
    targets = {k: torch.tensor([LABELS[k].index(r.extra[k]) for r in rows]) for k in LABELS}
    real_features = suite.features(real)
    refs = {"real": stats_of(real_features)}
    vae = load_vae(resolve_model_path(cfg.models.vae)).eval()
    results = {
        "real clips": score(suite, real_features, text_joint, targets, refs)
        | silence_floor(clip_noise_floor_db(real), captions)
    }

    def record(name: str, waves: torch.Tensor) -> None:
        results[name] = score(suite, suite.features(waves), text_joint, targets, refs) | silence_floor(
            clip_noise_floor_db(waves), captions
        )
        print(name, json.dumps({k: round(v, 4) for k, v in results[name].items()}), flush=True)

    for spec in args.vocoder:
        if spec == "true-magnitude":
            from bsa.audio import log_magnitude

            gl = load_vocoder("griffin-lim")  # the shipped settings
            with torch.no_grad():
                waves = torch.cat(
                    [
                        gl.waveform(log_magnitude(w).exp(), log_mel(w).shape[1])[..., : w.shape[-1]]
                        for w in tqdm(real.split(64), desc=spec)
                    ]
                )
            record("real → true magnitude → griffin-lim", waves)
            continue
        vocoder = load_vocoder(spec)
        for through_vae in (True, False) if args.without_vae else (True,):
            waves = []
            with torch.no_grad():
                for w in tqdm(real.split(64), desc=f"{spec}{' after the VAE' if through_vae else ''}"):
                    mel = log_mel(w)
                    if through_vae:
                        z = encode_mel(vae, mel.unsqueeze(1)) * vae.config.scaling_factor
                        mel = decode_latents(vae, z).squeeze(1)
                    waves.append(vocoder(mel).float()[..., : w.shape[-1]])
            record(f"real → {'VAE → ' if through_vae else ''}{spec}", torch.cat(waves))
    summary = {
        "results": results,
        "clips": len(rows),
        "device": f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python " + " ".join(sys.argv),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def _text_embeddings(cfg, captions):
    from bsa.models.text import load_text_encoder

    return load_text_encoder(cfg.models.text_encoder)(captions).float()


if __name__ == "__main__":
    sys.exit(main())
