import csv
import filecmp

import numpy as np
import pytest
import torch

from bsa.audio import MelParams, load_clip
from bsa.data.embedded import (
    BACKGROUND_WORDS,
    LOUDNESS_WORDS,
    PITCH_WORDS,
    RHYTHM_WORDS,
    SOURCES,
    EmbeddedDatasetConfig,
    caption_labels,
    clip_spec,
    generate_dataset,
    synthesise,
)

SMALL = EmbeddedDatasetConfig(seed=7, train=10, val=3, test=3, duration=1.28)


def spectral_centroid(wave: np.ndarray, rate: int = 16000) -> float:
    mag = np.abs(np.fft.rfft(wave))
    f = np.fft.rfftfreq(wave.shape[0], 1 / rate)
    return float((mag * f).sum() / mag.sum())


def test_same_seed_gives_byte_identical_files_with_any_worker_count(tmp_path):
    a = generate_dataset(tmp_path / "a", SMALL, workers=1, progress=False)
    b = generate_dataset(tmp_path / "b", SMALL, workers=2, progress=False)
    assert a["sha256"] == b["sha256"]
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".wav"]) == 16
    for f in files:
        assert filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False), f
    c = generate_dataset(
        tmp_path / "c",
        EmbeddedDatasetConfig(seed=8, train=10, val=3, test=3, duration=1.28),
        workers=1,
        progress=False,
    )
    assert c["sha256"] != a["sha256"], "another seed gives other data"


def test_csv_is_audiocaps_layout_with_attributes(tmp_path):
    generate_dataset(tmp_path, SMALL, workers=1, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "train.csv")))
    assert list(rows[0])[:4] == ["audiocap_id", "youtube_id", "start_time", "caption"]
    assert {"source", "pitch", "pitch_hz", "rhythm", "loudness", "background"} <= set(rows[0])
    assert all(len(r["youtube_id"]) == 11 for r in rows)
    assert len({r["audiocap_id"] for r in rows}) == len(rows)
    for r in rows:
        clip = load_clip(tmp_path / "audio" / "train" / f"{r['youtube_id']}.wav", 16000, 20480)
        assert clip.source_rate == 16000 and clip.notes == []


def test_caption_labels_are_those_of_the_written_csv(tmp_path):
    """Reports label the evaluated clips without the data on disk: the labels must be the CSV's,
    for the set's seed, whatever the split's size (the first 3 of a 3-clip split and of a 5-clip one)."""
    generate_dataset(tmp_path, SMALL, workers=1, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "test.csv")))
    labels = caption_labels(SMALL.seed, "test", 3, ("loudness", "background", "source"))
    assert labels == {a: [r[a] for r in rows] for a in ("loudness", "background", "source")}
    assert caption_labels(SMALL.seed, "test", 5, ("source",))["source"][:3] == labels["source"]
    other = caption_labels(SMALL.seed + 1, "test", 50, ("source",))["source"]
    assert other != caption_labels(SMALL.seed, "test", 50, ("source",))["source"]  # the seed matters


def test_captions_state_the_attributes():
    assert len(SOURCES) >= 10
    for i in range(300):
        spec, _ = clip_spec(0, "train", i)
        cap = spec.caption.lower()
        assert any(w in cap for w in SOURCES[spec.source]["nouns"])
        assert any(f" {w} " in cap for w in PITCH_WORDS[spec.pitch])
        assert any(w in cap for w in RHYTHM_WORDS[spec.rhythm])
        assert any(w in cap for w in LOUDNESS_WORDS[spec.loudness])
        assert any(w in cap for w in BACKGROUND_WORDS[spec.background])
        lo, hi = SOURCES[spec.source][spec.pitch]
        assert lo <= spec.pitch_hz <= hi


def _specs_by(source: str, **attrs):
    for i in range(5000):
        spec, rng = clip_spec(1, "train", i)
        if spec.source == source and all(getattr(spec, k) == v for k, v in attrs.items()):
            yield spec, rng


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_high_is_higher_than_low_and_loud_louder_than_quiet(source):
    """Caption/attribute consistency measured on the audio: spectral centroid and RMS."""

    def first(**attrs):
        spec, rng = next(_specs_by(source, background="silence", rhythm="continuous", **attrs))
        return synthesise(spec, rng, 1.28, 16000)

    high, low = first(pitch="high"), first(pitch="low")
    assert np.isfinite(high).all() and np.abs(high).max() > 0.05
    assert spectral_centroid(high) > 1.5 * spectral_centroid(low)
    loud, quiet = first(loudness="loud"), first(loudness="quiet")
    assert np.sqrt((loud**2).mean()) > 2 * np.sqrt((quiet**2).mean())


@pytest.mark.parametrize("source", ["tone", "noise_burst", "siren", "engine"])
def test_rhythm_shows_in_the_envelope(source):
    """once → one event, repeated → 3–5 events, continuous → active throughout (counted on the audio)."""

    def envelope(rhythm):
        spec, rng = next(_specs_by(source, rhythm=rhythm, background="silence"))
        w = synthesise(spec, rng, 2.56, 16000)
        frames = np.abs(w[: len(w) // 160 * 160]).reshape(-1, 160).max(1)
        active = frames > 0.1 * frames.max()
        onsets = int(active[0]) + int((active[1:] & ~active[:-1]).sum())
        return onsets, active.mean()

    assert envelope("once")[0] == 1
    assert 3 <= envelope("repeated")[0] <= 5
    assert envelope("continuous")[1] > 0.95


def test_mel_frames_match_audioldm_convention():
    assert MelParams().frames(40960) == 256 and MelParams().frames(163840) == 1024
    from bsa.audio import log_mel

    mel = log_mel(torch.randn(2, 40960) * 0.1)
    assert mel.shape == (2, 256, 64) and bool(torch.isfinite(mel).all())
    assert mel.min().item() >= np.log(1e-5) - 1e-6
