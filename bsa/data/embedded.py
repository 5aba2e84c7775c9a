"""A procedural, captioned audio data set in AudioCaps' layout (SPEC §7): the embedded default.

Eleven sound sources with distinct spectra and envelopes, each varied by pitch (low/high), rhythm
(once/repeated/continuous), loudness (quiet/loud) and background (silence/hum/noise), and a
caption that says all of it, so a model has to read the caption to get the sound right. Written as
``{split}.csv`` (``audiocap_id,youtube_id,start_time,caption`` + the ground-truth attribute columns)
and ``audio/{split}/{youtube_id}.wav``. Deterministic: clip k of a split depends only on
(seed, split, k), so the same seed gives byte-identical files, in any number of worker processes.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from bsa.audio import num_samples_for, write_wav
from bsa.durable import temporary_path

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
AUDIOCAPS_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
ATTRIBUTE_COLUMNS = ("source", "pitch", "pitch_hz", "rhythm", "loudness", "background")

# f0 (or band centre for noise-like sources) ranges in Hz for "low" and "high"
SOURCES: dict[str, dict] = {
    "tone": {"low": (150, 300), "high": (1000, 2000), "nouns": ["tone", "beep", "sine tone"]},
    "chord": {"low": (110, 220), "high": (660, 1320), "nouns": ["chord", "major chord"]},
    "chirp_up": {"low": (150, 300), "high": (900, 1500), "nouns": ["rising chirp", "upward sweep"]},
    "chirp_down": {"low": (300, 600), "high": (1800, 3000), "nouns": ["falling chirp", "downward sweep"]},
    "siren": {"low": (250, 450), "high": (1000, 1600), "nouns": ["siren", "wailing siren"]},
    "noise_burst": {"low": (250, 600), "high": (3000, 5000), "nouns": ["burst of noise", "noise burst"]},
    "rain": {"low": (400, 900), "high": (3000, 5500), "nouns": ["rain", "rainfall"]},
    "clicks": {"low": (400, 800), "high": (3000, 5000), "nouns": ["clicking", "ticking"]},
    "engine": {"low": (40, 70), "high": (140, 220), "nouns": ["engine hum", "motor"]},
    "bird": {"low": (1200, 1800), "high": (3500, 5000), "nouns": ["bird chirping", "bird call"]},
    "bell": {"low": (200, 400), "high": (1200, 2200), "nouns": ["bell", "chime"]},
}
PITCH_WORDS = {"low": ["low", "low-pitched", "deep"], "high": ["high", "high-pitched", "shrill"]}
LOUDNESS = {"quiet": (0.08, 0.15), "loud": (0.5, 0.8)}
LOUDNESS_WORDS = {"quiet": ["quiet", "soft", "faint"], "loud": ["loud", "strong", "powerful"]}
RHYTHM_WORDS = {
    "once": ["sounds once", "occurs a single time", "is heard once"],
    "repeated": ["repeats several times", "sounds repeatedly", "is heard again and again"],
    "continuous": ["plays continuously", "sounds steadily", "goes on without a break"],
}
LABELS = {  # the attribute vocabularies, in a fixed order (the evaluator's class indices)
    "source": list(SOURCES),
    "pitch": ["low", "high"],
    "rhythm": ["once", "repeated", "continuous"],
    "loudness": ["quiet", "loud"],
    "background": ["silence", "hum", "noise"],
}
BACKGROUND_WORDS = {
    "silence": ["in silence", "with no background"],
    "hum": ["over a quiet hum", "over a low background hum"],
    "noise": ["over soft background noise", "with faint static behind it"],
}


@dataclass(frozen=True)
class ClipSpec:
    """Ground truth of one clip: what the caption says and the parameters that realise it."""

    audiocap_id: int
    youtube_id: str
    caption: str
    source: str
    pitch: str
    pitch_hz: float
    rhythm: str
    loudness: str
    background: str


def _split_code(split: str) -> int:
    return SPLITS.index(split)


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _split_code(split), index])


def clip_spec(seed: int, split: str, index: int) -> tuple[ClipSpec, np.random.Generator]:
    """Attributes and caption of clip ``index`` of ``split``; returns the rng for its synthesis."""
    rng = clip_rng(seed, split, index)
    source = str(rng.choice(list(SOURCES)))
    pitch = str(rng.choice(["low", "high"]))
    rhythm = str(rng.choice(list(RHYTHM_WORDS)))
    loudness = str(rng.choice(list(LOUDNESS)))
    background = str(rng.choice(list(BACKGROUND_WORDS)))
    lo, hi = SOURCES[source][pitch]
    pitch_hz = float(np.round(np.exp(rng.uniform(np.log(lo), np.log(hi))), 1))
    words = [
        str(rng.choice(LOUDNESS_WORDS[loudness])),
        str(rng.choice(PITCH_WORDS[pitch])),
        str(rng.choice(SOURCES[source]["nouns"])),
        str(rng.choice(RHYTHM_WORDS[rhythm])),
        str(rng.choice(BACKGROUND_WORDS[background])),
    ]
    caption = f"A {' '.join(words)}"
    youtube_id = f"bsa{'tvs'[_split_code(split)]}{index:07d}"  # 11 characters, like a YouTube id
    audiocap_id = 1_000_000 * (_split_code(split) + 1) + index
    return ClipSpec(
        audiocap_id, youtube_id, caption, source, pitch, pitch_hz, rhythm, loudness, background
    ), rng


def caption_labels(seed: int, split: str, clips: int, attributes: tuple[str, ...]) -> dict[str, list[str]]:
    """Per caption attribute (a :class:`ClipSpec` field: ``loudness``, ``background``, …), the label
    of each of the first ``clips`` clips of ``split`` of the set drawn with ``seed`` — what its CSV
    holds, without generating it (a clip's labels do not depend on the split's size)."""
    specs = [clip_spec(seed, split, i)[0] for i in range(clips)]
    return {a: [getattr(s, a) for s in specs] for a in attributes}


# ---------------------------------------------------------------------------------------------- synthesis


def _bandpass_noise(
    rng: np.random.Generator, n: int, centre: float, rate: int, q: float = 0.35
) -> np.ndarray:
    """White noise band-limited around ``centre`` Hz (Gaussian band, relative width ``q``), in the FFT."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spec *= np.exp(-0.5 * ((f - centre) / (q * centre)) ** 2)
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-9)


def _event_times(rng: np.random.Generator, rhythm: str, duration: float) -> list[tuple[float, float]]:
    """(onset, length) in seconds of the events for ``rhythm``."""
    if rhythm == "continuous":
        return [(0.0, duration)]
    if rhythm == "once":
        length = rng.uniform(0.35, 0.6) * min(duration, 2.56)
        return [(rng.uniform(0.05, duration - length - 0.05), length)]
    count = int(rng.integers(3, 6))
    period = duration / count
    length = period * rng.uniform(0.35, 0.55)
    start = rng.uniform(0.02, period - length)
    return [(start + k * period, length) for k in range(count)]


def _gate(n: int, rate: int, events: list[tuple[float, float]], attack: float, release: float) -> np.ndarray:
    t = np.arange(n) / rate
    env = np.zeros(n)
    for onset, length in events:
        local = t - onset
        inside = (local >= 0) & (local <= length)
        a = np.clip(local / attack, 0, 1)
        r = np.clip((length - local) / release, 0, 1)
        env = np.maximum(env, np.where(inside, np.minimum(a, r), 0.0))
    return env


def _source_signal(
    spec: ClipSpec, rng: np.random.Generator, n: int, rate: int, duration: float
) -> np.ndarray:
    t = np.arange(n) / rate
    f0 = spec.pitch_hz
    events = _event_times(rng, spec.rhythm, duration)
    gate = _gate(n, rate, events, attack=0.01, release=0.03)
    phase0 = rng.uniform(0, 2 * np.pi)
    s = spec.source
    if s == "tone":
        x = np.sin(2 * np.pi * f0 * t + phase0)
    elif s == "chord":
        x = sum(np.sin(2 * np.pi * f0 * r * t + phase0 * k) for k, r in enumerate((1.0, 1.26, 1.5))) / 3
    elif s in ("chirp_up", "chirp_down"):
        x = np.zeros(n)
        ratio = 2.5 if s == "chirp_up" else 1 / 2.5
        for onset, length in events:  # one sweep per event (a continuous one sweeps in 0.64 s cycles)
            seg = min(length, 0.64) if spec.rhythm == "continuous" else length
            local = np.mod(t - onset, seg) if spec.rhythm == "continuous" else t - onset
            f = f0 * ratio ** (local / seg)
            phase = 2 * np.pi * np.cumsum(f) / rate
            mask = (t >= onset) & (t <= onset + length)
            x = np.where(mask, np.sin(phase), x)
    elif s == "siren":
        rate_hz = rng.uniform(0.8, 1.6)
        f = f0 * (1 + 0.25 * np.sin(2 * np.pi * rate_hz * t))
        phase = 2 * np.pi * np.cumsum(f) / rate
        x = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
    elif s == "noise_burst":
        x = _bandpass_noise(rng, n, f0, rate, q=0.5)
        gate = _gate(n, rate, events, attack=0.002, release=0.2)
    elif s == "rain":
        base = 0.5 * _bandpass_noise(rng, n, f0, rate, q=0.8)
        drops = np.zeros(n)
        idx = rng.integers(0, n, size=int(60 * duration))
        drops[idx] = rng.uniform(0.3, 1.0, size=idx.shape[0])
        kernel = np.exp(-np.arange(int(0.004 * rate)) / (0.0008 * rate)) * np.sin(
            2 * np.pi * f0 * 1.3 * np.arange(int(0.004 * rate)) / rate
        )
        x = base + np.convolve(drops, kernel)[:n]
        gate = _gate(n, rate, events, attack=0.05, release=0.1)
    elif s == "clicks":
        tick_rate = rng.uniform(4, 8)
        impulses = np.zeros(n)
        impulses[(np.arange(0, duration, 1 / tick_rate) * rate).astype(int)] = 1.0
        k = np.arange(int(0.01 * rate)) / rate
        kernel = np.exp(-k / 0.0015) * np.sin(2 * np.pi * f0 * k)
        x = np.convolve(impulses, kernel)[:n]
        gate = _gate(n, rate, events, attack=0.001, release=0.005)
    elif s == "engine":
        wobble = 1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t)
        phase = 2 * np.pi * np.cumsum(f0 * wobble) / rate
        x = sum(np.sin(k * phase) / k for k in range(1, 9)) * (1 + 0.4 * np.sin(2 * np.pi * 8 * t))
        x = x + 0.2 * _bandpass_noise(rng, n, 4 * f0, rate, q=0.6)
        gate = _gate(n, rate, events, attack=0.08, release=0.1)
    elif s == "bird":
        x = np.zeros(n)
        for onset, length in events:
            chirp_len = 0.09
            for c0 in np.arange(onset, onset + length - chirp_len, 0.16):
                local = t - c0
                m = (local >= 0) & (local <= chirp_len)
                f = f0 * (1 + 0.35 * np.sin(2 * np.pi * 30 * local)) * (1 + 0.5 * local / chirp_len)
                ph = 2 * np.pi * np.cumsum(np.where(m, f, 0)) / rate
                x = np.where(m, np.sin(ph) * np.sin(np.pi * np.clip(local / chirp_len, 0, 1)), x)
    elif s == "bell":
        x = np.zeros(n)
        for onset, _ in (
            events if spec.rhythm != "continuous" else [(o, 0) for o in np.arange(0, duration, 0.64)]
        ):
            local = t - onset
            m = local >= 0
            strike = sum(
                a * np.sin(2 * np.pi * f0 * r * local) * np.exp(-local * d)
                for r, a, d in ((1.0, 1.0, 3.0), (2.76, 0.5, 5.0), (5.4, 0.25, 8.0), (8.9, 0.12, 12.0))
            )
            x = x + np.where(m, strike, 0.0)
        gate = np.ones(n)
    else:  # pragma: no cover - SOURCES and this switch are kept in step by test_every_source_synthesises
        raise ValueError(f"no synthesiser for source {s!r}")
    x = x * gate
    return x / (np.abs(x).max() + 1e-9)


def _background(spec: ClipSpec, rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    if spec.background == "hum":
        mains = rng.choice([50.0, 60.0])
        return 0.025 * sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
    if spec.background == "noise":
        spec_ = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1.0 / rate)
        spec_ /= np.sqrt(np.maximum(f, 20.0))  # pink-ish
        out = np.fft.irfft(spec_, n)
        return 0.02 * out / (np.abs(out).max() + 1e-9)
    return np.zeros(n)


def synthesise(spec: ClipSpec, rng: np.random.Generator, duration: float, sample_rate: int) -> np.ndarray:
    """The waveform of a clip, float32 in [−1, 1]."""
    n = num_samples_for(duration, sample_rate)
    peak = rng.uniform(*LOUDNESS[spec.loudness])
    x = peak * _source_signal(spec, rng, n, sample_rate, duration) + _background(spec, rng, n, sample_rate)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class EmbeddedDatasetConfig:
    seed: int = 0
    train: int = 4000
    val: int = 400
    test: int = 400
    duration: float = 2.56
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if not 0.5 <= self.duration <= 10.24:
            raise ValueError(f"duration must be in [0.5, 10.24] s, got {self.duration}")
        if min(self.train, self.val, self.test) < 0:
            raise ValueError("split sizes must be >= 0")

    def size(self, split: str) -> int:
        return int(getattr(self, split))


def _write_clip(args: tuple[EmbeddedDatasetConfig, str, int, str]) -> dict:
    cfg, split, index, root = args
    spec, rng = clip_spec(cfg.seed, split, index)
    path = Path(root) / "audio" / split / f"{spec.youtube_id}.wav"
    if not path.exists():
        write_wav(path, synthesise(spec, rng, cfg.duration, cfg.sample_rate), cfg.sample_rate)
    row = asdict(spec)
    row["start_time"] = 0
    return row


def generate_dataset(
    root: str | Path,
    cfg: EmbeddedDatasetConfig = EmbeddedDatasetConfig(),
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Write the data set under ``root``; existing wavs are kept (an interrupted run resumes).

    Returns (and writes to ``root/DATASET.json``) the description: config, counts, and a sha256
    over the CSVs and every wav, which identifies the data for the models trained on it.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(cfg, split, i, str(root)) for split in SPLITS for i in range(cfg.size(split))]
    bar = dict(total=len(jobs), desc="generating clips", disable=not progress)
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            rows = list(tqdm(pool.imap(_write_clip, jobs, chunksize=32), **bar))
    else:
        rows = [_write_clip(job) for job in tqdm(jobs, **bar)]
    digest = hashlib.sha256()
    for split in SPLITS:
        split_rows = [r for r in rows if r["youtube_id"][3] == "tvs"[_split_code(split)]]
        csv_path = root / f"{split}.csv"
        tmp = temporary_path(csv_path)
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(AUDIOCAPS_COLUMNS + ATTRIBUTE_COLUMNS))
            w.writeheader()
            for r in split_rows:
                w.writerow({k: r[k] for k in AUDIOCAPS_COLUMNS + ATTRIBUTE_COLUMNS})
        tmp.replace(csv_path)
        digest.update(csv_path.read_bytes())
        for r in split_rows:
            digest.update((root / "audio" / split / f"{r['youtube_id']}.wav").read_bytes())
    info = {
        "generator_version": GENERATOR_VERSION,
        "config": asdict(cfg),
        "counts": {s: cfg.size(s) for s in SPLITS},
        "sha256": digest.hexdigest(),
    }
    (root / "DATASET.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
