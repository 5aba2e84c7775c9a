import csv
import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch

from bsa.audio import MelParams
from bsa.data.datamodule import LatentDataModule, LatentShardStream, consumer_indices
from bsa.data.encode import SplitSource, build_cache
from bsa.data.manifest import CacheIdentity, CacheManifest, CacheMismatchError
from bsa.models.autoencoder import build_vae, encode_mel, latent_shape, vae_identity

RATE, SECONDS = 16000, 1.28
N = int(RATE * SECONDS)


def char_trigram_embedder(dim: int = 16):
    """A deterministic stand-in text encoder for cache tests (the real ones are tested in test_models)."""

    def embed(captions):
        out = torch.zeros(len(captions), dim)
        for i, c in enumerate(captions):
            for j in range(max(1, len(c) - 2)):
                h = int(hashlib.md5(c[j : j + 3].encode()).hexdigest(), 16)
                out[i, h % dim] += 1.0
        return torch.nn.functional.normalize(out + 1e-3, dim=-1)

    embed.identity = {"name": "char-trigram", "sha256": "test", "dim": dim}
    return embed


@pytest.fixture(scope="module")
def vae():
    return build_vae("tiny", seed=0).eval()


def identity_for(vae, text) -> CacheIdentity:
    mel = MelParams()
    return CacheIdentity(
        mel=mel.as_dict(),
        clip_seconds=SECONDS,
        vae=vae_identity(vae, "tiny"),
        text_encoder=text.identity,
        latent_shape=latent_shape(vae, mel.frames(N), mel.n_mels),
    )


def tone(seconds=SECONDS, rate=RATE, f=440.0, amp=0.3, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)
    return np.stack([x] * channels, 1) if channels > 1 else x


def write_split(root, name, n_good, bad=False):
    """n_good clean clips; with ``bad`` also one row of every problem the cache must report."""
    audio = root / "audio" / name
    audio.mkdir(parents=True)
    rows = []
    for i in range(n_good):
        sf.write(audio / f"{name}good{i:03d}.wav", tone(f=200.0 + 37 * i), RATE)
        rows.append([f"{name}{i}", f"{name}good{i:03d}", "0", f"clip number {i} of {name}"])
    if bad:
        sf.write(audio / "resampled.wav", tone(rate=44100), 44100)
        sf.write(audio / "stereo.wav", tone(channels=2), RATE)
        sf.write(audio / "shortpad.wav", tone(seconds=0.8), RATE)
        sf.write(audio / "silent.wav", np.zeros(N, dtype=np.float32), RATE)
        sf.write(audio / "tooshort.wav", tone(seconds=0.2), RATE)
        sf.write(audio / "empty.wav", np.zeros(0, dtype=np.float32), RATE)
        (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
        sf.write(audio / "nancaption.wav", tone(), RATE)
        rows += [
            ["b1", "resampled", "0", "a resampled tone"],
            ["b2", "stereo", "0", "a stereo tone"],
            ["b3", "shortpad", "0", "a short tone"],
            ["b4", "silent", "0", "nothing at all"],
            ["b5", "tooshort", "0", "a blip"],
            ["b6", "empty", "0", "an empty file"],
            ["b7", "corrupt", "0", "a corrupt file"],
            ["b8", "missing", "0", "a file that is not there"],
            ["b9", "nancaption", "0", "   "],
            ["b10", "nancaption", "soon", "bad start time"],
            ["b1", "stereo", "0", "duplicate id"],
        ]
    with open(root / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        w.writerows(rows)
        if bad:
            f.write("b11,only-two-fields\n")
    return SplitSource(root / f"{name}.csv", audio)


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "audiocaps"
    return {
        "train": write_split(root, "train", 7),
        "val": write_split(root, "val", 3),
        "test": write_split(root, "test", 3),
    }


def build(splits, cache, vae, text, **kw):
    return build_cache(
        splits,
        cache,
        identity_for(vae, text),
        lambda m: encode_mel(vae, m),
        text,
        progress=False,
        batch_size=4,
        **kw,
    )


def test_bad_inputs_are_handled_and_each_reported(tmp_path, vae):
    splits = {"train": write_split(tmp_path / "d", "train", 2, bad=True)}
    text = char_trigram_embedder()
    result = build(splits, tmp_path / "cache", vae, text, shard_size=4)
    report = {r["audiocap_id"] + ":" + r["action"]: r["reason"] for r in csv.DictReader(open(result.report))}
    expected_skips = {
        "b4": "silent audio",
        "b5": "too short",
        "b6": "empty audio",
        "b7": "unreadable audio",
        "b8": "missing audio file",
        "b9": "empty caption",
        "b10": "malformed row: start_time 'soon'",
        "b1": "duplicate audiocap_id b1",
        "b11": "malformed row",
    }
    for cap_id, reason in expected_skips.items():
        assert reason in report.get(f"{cap_id}:skipped", ""), (cap_id, report)
    assert "resampled from 44100 Hz" in report["b1:resampled"]
    assert "down-mixed 2 channels" in report["b2:down-mixed"]
    assert "padded 0.80 s → 1.28 s" in report["b3:padded"]
    ids = torch.load(tmp_path / "cache" / "train" / "shard_00000.pt", weights_only=True)["ids"]
    ids += torch.load(tmp_path / "cache" / "train" / "shard_00001.pt", weights_only=True)["ids"]
    ids += torch.load(tmp_path / "cache" / "train" / "shard_00002.pt", weights_only=True)["ids"]
    assert sorted(ids) == ["b1", "b2", "b3", "train0", "train1"]
    assert result.manifest.splits["train"].count == 5 and result.manifest.splits["train"].skipped == 9
    summary = result.summary()
    assert summary.startswith("cache: 5 clips encoded, 9 skipped (") and "1 silent audio" in summary
    assert "1 resampled" in summary and str(result.report) in summary


def test_cache_contents_and_datamodule_batches(tmp_path, dataset, vae):
    text = char_trigram_embedder()
    result = build(dataset, tmp_path / "cache", vae, text, shard_size=4)
    m = CacheManifest.read(tmp_path / "cache")
    assert m.identity.latent_shape == [8, 32, 16] and m.splits["train"].count == 7
    assert m.identity.mel["n_mels"] == 64 and m.identity.mel["hop_length"] == 160
    dm = LatentDataModule(tmp_path / "cache", batch_size=3, expected=identity_for(vae, text))
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["latents"].shape == (3, 8, 32, 16) and batch["latents"].dtype == torch.float32
    assert batch["text_emb"].shape == (3, 16) and len(batch["caption"]) == 3 and len(batch["id"]) == 3
    torch.testing.assert_close(dm.null_text_embedding, text([""])[0])
    # the cached latent of a clip equals encoding it again (storage in float16)
    shard = torch.load(tmp_path / "cache" / "val" / "shard_00000.pt", weights_only=True)
    from bsa.audio import load_clip, log_mel

    wave = load_clip(dataset["val"].audio_dir / "valgood000.wav", RATE, N).wave
    z = encode_mel(vae, log_mel(wave).view(1, 1, -1, 64))
    torch.testing.assert_close(shard["latents"][0].float(), z[0], rtol=2e-3, atol=2e-3)
    assert result.encoded == 13


def test_manifest_mismatch_is_refused(tmp_path, dataset, vae):
    text = char_trigram_embedder()
    build(dataset, tmp_path / "cache", vae, text)
    other_vae = build_vae("tiny", seed=1)
    dm = LatentDataModule(tmp_path / "cache", batch_size=2, expected=identity_for(other_vae, text))
    with pytest.raises(CacheMismatchError, match=r"vae.sha256: cache has '[0-9a-f]+', config gives"):
        dm.setup()
    other_text = char_trigram_embedder(dim=8)
    other_text.identity = {"name": "char-trigram", "sha256": "test", "dim": 8}
    with pytest.raises(CacheMismatchError, match=r"text_encoder.dim: cache has 16, config gives 8"):
        build(dataset, tmp_path / "cache", vae, other_text)


def test_interrupted_build_resumes_without_recomputing(tmp_path, dataset, vae):
    text = char_trigram_embedder()
    calls = {"n": 0}

    def flaky(mel):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return encode_mel(vae, mel)

    ident = identity_for(vae, text)
    with pytest.raises(KeyboardInterrupt):
        build_cache(
            dataset, tmp_path / "cache", ident, flaky, text, shard_size=2, batch_size=2, progress=False
        )
    done = sorted(
        p.name for p in (tmp_path / "cache" / "train").glob("shard_*.pt") if ".report" not in p.name
    )
    assert (
        done == ["shard_00000.pt", "shard_00001.pt"] and not (tmp_path / "cache" / "manifest.json").exists()
    )
    calls["n"] = 100
    build_cache(dataset, tmp_path / "cache", ident, flaky, text, shard_size=2, batch_size=2, progress=False)
    assert calls["n"] == 100 + 2 + 2 + 2, "only the 6 missing shards (train 2, val 2, test 2) are encoded"
    build_cache(
        dataset,
        tmp_path / "fresh",
        ident,
        lambda m: encode_mel(vae, m),
        text,
        shard_size=2,
        batch_size=2,
        progress=False,
    )
    for split in ("train", "val", "test"):
        for p in sorted((tmp_path / "fresh" / split).glob("shard_?????.pt")):
            a = torch.load(p, weights_only=True)
            b = torch.load(tmp_path / "cache" / split / p.name, weights_only=True)
            assert a["ids"] == b["ids"] and torch.equal(a["latents"], b["latents"])


def test_workers_split_shards_and_the_last_writes_the_manifest(tmp_path, dataset, vae):
    text = char_trigram_embedder()
    first = build(dataset, tmp_path / "cache", vae, text, shard_size=2, worker_index=0, worker_count=2)
    assert first.manifest is None and "waiting for other workers" in first.summary()
    second = build(dataset, tmp_path / "cache", vae, text, shard_size=2, worker_index=1, worker_count=2)
    assert second.manifest is not None and second.manifest.splits["train"].count == 7
    assert first.encoded + second.encoded == 13


@pytest.mark.parametrize("n, world", [(10, 3), (7, 7), (5, 8), (64, 4)])
def test_consumer_indices_disjoint_and_complete(n, world):
    parts = [list(consumer_indices(n, r, world)) for r in range(world)]
    flat = sorted(i for p in parts for i in p)
    assert flat == list(range(n))
    even = [len(consumer_indices(n, r, world, even=True)) for r in range(world)]
    assert len(set(even)) == 1 and even[0] == n // world


def test_rank_sharding_of_the_stream_is_disjoint_and_complete(tmp_path, dataset, vae):
    text = char_trigram_embedder()
    build(dataset, tmp_path / "cache", vae, text, shard_size=3)
    manifest = CacheManifest.read(tmp_path / "cache")
    world = 3
    per_rank = [
        [
            item["id"]
            for item in LatentShardStream(
                tmp_path / "cache", "train", manifest, shuffle=True, seed=5, rank=r, world_size=world
            )
        ]
        for r in range(world)
    ]
    assert sorted(i for ids in per_rank for i in ids) == sorted(f"train{i}" for i in range(7))
    assert sum(len(ids) for ids in per_rank) == 7
    even = [
        len(
            list(
                LatentShardStream(
                    tmp_path / "cache",
                    "train",
                    manifest,
                    shuffle=True,
                    seed=5,
                    even=True,
                    rank=r,
                    world_size=world,
                )
            )
        )
        for r in range(world)
    ]
    assert even == [2, 2, 2]
    s = LatentShardStream(tmp_path / "cache", "train", manifest, shuffle=True, seed=5)
    first, second = [i["id"] for i in s], [i["id"] for i in s]
    assert sorted(first) == sorted(second) and first != second, "each pass reshuffles"


def _take(iterable, n):
    it = iter(iterable)
    return [next(it) for _ in range(n)]


def test_resident_batches_cover_each_pass_once_per_rank_and_resume_exactly():
    from bsa.data.datamodule import ResidentTrainBatches

    n, batch, world = 23, 3, 2  # 11 items per rank: 3 batches a pass, 2 items of each rank dropped
    latents = torch.arange(n, dtype=torch.float16).view(n, 1, 1, 1).expand(n, 2, 2, 2).contiguous()
    text = torch.arange(n, dtype=torch.float32)[:, None]

    def ids(b):
        return b["text_emb"][:, 0].long().tolist()

    ranks = [
        ResidentTrainBatches(latents, text, batch, scale=2.0, seed=7, rank=r, world_size=world)
        for r in range(world)
    ]
    passes = [[ids(b) for b in _take(r, 6)] for r in ranks]  # two passes per rank
    for p in (0, 1):
        seen = [i for r in passes for b in r[3 * p : 3 * p + 3] for i in b]
        assert len(seen) == len(set(seen)) == 2 * 3 * batch, "ranks are disjoint within a pass"
    assert passes[0][:3] != passes[0][3:], "each pass reshuffles"
    first = next(iter(ranks[0]))
    assert torch.equal(first["latents"][:, 0, 0, 0], 2.0 * first["text_emb"][:, 0]), (
        "scaled latents of the same items"
    )
    assert first["latents"].dtype == torch.float32
    resumed = ResidentTrainBatches(
        latents, text, batch, scale=2.0, seed=7, rank=0, world_size=world, skip_batches=4
    )
    assert [ids(b) for b in _take(resumed, 2)] == passes[0][4:6], (
        "a resumed stream continues the same batches"
    )


def test_resident_batches_refuse_a_split_smaller_than_a_batch_per_rank():
    from bsa.data.datamodule import EmptyTrainingSetError, ResidentTrainBatches

    with pytest.raises(EmptyTrainingSetError, match="need at least 8"):
        ResidentTrainBatches(torch.zeros(7, 1, 1, 1), torch.zeros(7, 2), 4, world_size=2)


def test_resident_datamodule_serves_the_cached_train_split(tmp_path, dataset, vae):
    text = char_trigram_embedder()
    build(dataset, tmp_path / "cache", vae, text, shard_size=3)
    dm = LatentDataModule(tmp_path / "cache", 2, resident=True, seed=1)
    streamed = {
        i["id"]: i
        for i in LatentShardStream(
            tmp_path / "cache", "train", dm.manifest or CacheManifest.read(tmp_path / "cache"), shuffle=False
        )
    }
    batch = next(iter(dm.train_dataloader()))
    for lat, emb in zip(batch["latents"], batch["text_emb"], strict=True):
        match = [i for i in streamed.values() if torch.equal(i["text_emb"], emb)]
        assert len(match) == 1 and torch.equal(match[0]["latents"], lat)
