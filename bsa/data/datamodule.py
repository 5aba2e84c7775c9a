"""Streaming the latent cache: a rank- and worker-sharded iterable dataset and the DataModule."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from bsa.data.manifest import CacheIdentity, CacheManifest


def consumer_indices(n: int, consumer: int, num_consumers: int, even: bool = False) -> range:
    """Item positions 0…n−1 that consumer ``consumer`` of ``num_consumers`` takes: a stride, so
    consumers are disjoint and together complete. ``even=True`` drops the last n mod num_consumers
    items so that every consumer gets the same count (no DDP rank waits on another)."""
    if not 0 <= consumer < num_consumers:
        raise ValueError(f"consumer {consumer} not in [0, {num_consumers})")
    stop = (n // num_consumers) * num_consumers if even else n
    return range(consumer, stop, num_consumers)


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def worker_in_own_process_group(worker_id: int) -> None:
    """The ``worker_init_fn`` of :class:`GroupSignalSafeDataLoader`: the worker leaves its parent's
    process group, then takes SIGTERM again (blocked since the fork), dropping one that was sent to
    the old group meanwhile."""
    import os
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        return
    os.setpgid(0, 0)
    discard = signal.SIGTERM in signal.sigpending()
    if discard:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # it is dropped as it is unblocked
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    if discard:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class GroupSignalSafeDataLoader(DataLoader):
    """A DataLoader whose worker processes a SIGTERM to the process group does not reach.

    ``timeout`` (and a terminal) signal the whole group: a worker killed by that SIGTERM fails the
    main process's next fetch mid-step, before Lightning can stop at the step's end and the
    checkpoint callback save it. Each worker is forked with SIGTERM blocked and moves to a group of
    its own before unblocking it; the main process stops its workers as usual (and they end within
    seconds of its death, which they watch). Ignoring SIGTERM in the workers instead would hang the
    exit: multiprocessing stops leftover workers with SIGTERM and then waits for them.

    Nor do the workers finalise the parent's objects: garbage is collected before the fork and
    what the workers inherit is frozen out of their collections (``gc.freeze``). A CUDA graph left
    as cyclic garbage (a population's previous stage) and collected in a forked worker calls the
    driver there and aborts the worker ("CUDA error: initialization error")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("worker_init_fn", worker_in_own_process_group)
        super().__init__(*args, **kwargs)

    def _get_iterator(self):
        import signal

        if self.num_workers == 0 or not hasattr(signal, "pthread_sigmask"):  # (Windows: no groups)
            return super()._get_iterator()
        gc.collect()
        gc.freeze()  # the forks' collections leave what they inherit alone
        before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited by the forks
        try:
            return super()._get_iterator()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a SIGTERM meanwhile arrives now
            gc.unfreeze()


class LatentShardStream(IterableDataset):
    """Streams one split of the cache, shard by shard, each rank × dataloader-worker taking a
    disjoint stride of the (optionally shuffled) item order. Latents are scaled by the VAE's
    scaling factor just in time; storage stays raw."""

    def __init__(
        self,
        cache_dir: str | Path,
        split: str,
        manifest: CacheManifest,
        *,
        shuffle: bool,
        seed: int = 0,
        even: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        cached_shards: int = 64,
    ):
        self.dir = Path(cache_dir) / split
        if split not in manifest.splits:
            raise KeyError(f"split {split!r} not in the cache (has {sorted(manifest.splits)})")
        self.entry = manifest.splits[split]
        self.scale = float(manifest.identity.vae.get("scaling_factor", 1.0))
        self.shuffle, self.seed, self.even = shuffle, seed, even
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.worker_offset = 0
        self.cached_shards = cached_shards
        self._sizes: list[int] | None = None

    def _consumer(self) -> tuple[int, int]:
        rank, world = (self.rank, self.world_size) if self.rank is not None else _rank_world()
        info = get_worker_info()
        w, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        w = (w + self.worker_offset) % nw  # see RepeatingStream: a resumed loader rotates worker roles
        return rank * nw + w, world * nw

    def __len__(self) -> int:
        rank, world = (self.rank, self.world_size) if self.rank is not None else _rank_world()
        n = self.entry.count
        return n // world if self.even else len(range(rank, n, world))

    def __iter__(self):
        consumer, consumers = self._consumer()
        shard_order = list(range(len(self.entry.shards)))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1  # each pass reshuffles; persistent workers advance their own copies in step
        if self.shuffle:
            shard_order = torch.randperm(len(shard_order), generator=g).tolist()
        # the global item order: shards in shard_order, items within a shard permuted
        if self._sizes is None:
            self._sizes = [len(self._load(k)["ids"]) for k in range(len(self.entry.shards))]
        plan = []
        for k in shard_order:
            within = (
                torch.randperm(self._sizes[k], generator=g).tolist()
                if self.shuffle
                else range(self._sizes[k])
            )
            plan.extend((k, j) for j in within)
        mine = [plan[i] for i in consumer_indices(len(plan), consumer, consumers, self.even)]
        loaded_k, shard = None, None
        for k, j in mine:
            if k != loaded_k:
                shard, loaded_k = self._load(k), k
            yield {
                "latents": shard["latents"][j].float() * self.scale,
                "text_emb": shard["text_emb"][j].float(),
                "caption": shard["captions"][j],
                "id": shard["ids"][j],
                "meta": shard["meta"][j],
            }

    def _load(self, k: int) -> dict[str, Any]:
        """Shard k, kept in an LRU of ``cached_shards`` loaded shards: every pass visits every shard
        (the item order is strided over them), so re-reading them each pass would starve the GPU."""
        cache = self.__dict__.setdefault("_shard_cache", {})
        if k not in cache:
            if len(cache) >= self.cached_shards:
                cache.pop(next(iter(cache)))
            cache[k] = torch.load(self.dir / self.entry.shards[k], weights_only=True)
        else:
            cache[k] = cache.pop(k)  # most recently used last
        return cache[k]


class EmptyTrainingSetError(ValueError):
    """The train split has too few items to feed every rank and worker."""


class RepeatingStream(IterableDataset):
    """An endless stream of reshuffled passes over a :class:`LatentShardStream`: for step-based
    training, so that no dataloader worker ever ends an epoch with fewer items than a batch.

    ``skip_batches`` resumes mid-stream: batch j of the loader comes from worker j mod W (each
    worker batches its own items), so each worker drops the items of its batches among the first
    ``skip_batches`` — the resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, stream: LatentShardStream, batch_size: int = 1, skip_batches: int = 0):
        self.stream, self.batch_size, self.skip_batches = stream, batch_size, skip_batches

    def __iter__(self):
        info = get_worker_info()
        w, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        # the loader starts its round-robin at worker 0, which must play the worker that would
        # have produced batch `skip_batches`: rotate the roles by skip_batches mod W
        self.stream.worker_offset = self.skip_batches % nw
        role = (w + self.stream.worker_offset) % nw
        skip = (max(0, self.skip_batches - role) + nw - 1) // nw * self.batch_size
        while True:
            for item in self.stream:
                if skip:
                    skip -= 1
                    continue
                yield item


class ResidentTrainBatches:
    """Endless training batches of one split held whole in (GPU) memory: for models whose step
    is shorter than a Python data loader takes to batch it (the embedded 3.2 M UNet: docs/results/speed.md,
    "Sampling speed and distillation throughput").

    Pass p is ``randperm(n)`` of a generator seeded by (seed, p); rank r of W takes every W-th
    position (an equal count each), cut into ``batch_size`` batches (the rest of the pass is
    dropped). Batch j is a function of (seed, j, rank) alone, so a resumed run (``skip_batches``)
    sees exactly the batches of an uninterrupted one. Latents are stored as cached (float16) and
    scaled by the VAE's scaling factor as each batch is drawn."""

    def __init__(
        self,
        latents: torch.Tensor,
        text_emb: torch.Tensor,
        batch_size: int,
        *,
        scale: float = 1.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        skip_batches: int = 0,
    ):
        self.latents, self.text_emb, self.scale = latents, text_emb, scale
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.skip_batches = skip_batches
        per_rank = len(latents) // world_size
        self.batches_per_pass = per_rank // batch_size
        if self.batches_per_pass < 1:
            raise EmptyTrainingSetError(
                f"the train split has {len(latents)} item(s): {world_size} rank(s) × batch {batch_size} "
                f"need at least {world_size * batch_size} (lower the batch size or set data.resident=false)"
            )

    def to(self, device) -> ResidentTrainBatches:
        self.latents, self.text_emb = self.latents.to(device), self.text_emb.to(device)
        return self

    def pass_order(self, p: int) -> torch.Tensor:
        """This rank's item positions in pass ``p``, in order (whole batches only)."""
        order = torch.randperm(
            len(self.latents), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + p)
        )
        return order[self.rank :: self.world_size][: self.batches_per_pass * self.batch_size]

    def __iter__(self):
        batch = self.skip_batches
        while True:
            p, first = divmod(batch, self.batches_per_pass)
            mine = self.pass_order(p).to(self.latents.device)
            for j in range(first, self.batches_per_pass):
                idx = mine[j * self.batch_size : (j + 1) * self.batch_size]
                yield {
                    "latents": self.latents[idx].float() * self.scale,
                    "text_emb": self.text_emb[idx].float(),
                }
                batch += 1


def load_split_tensors(cache_dir: str | Path, split: str, manifest: CacheManifest):
    """(latents as stored, text embeddings) of a whole split, in item order."""
    folder = Path(cache_dir) / split
    shards = [torch.load(folder / name, weights_only=True) for name in manifest.splits[split].shards]
    if not shards:
        raise EmptyTrainingSetError(f"latent cache {cache_dir}: the {split} split has no shards")
    return torch.cat([s["latents"] for s in shards]), torch.cat([s["text_emb"] for s in shards])


def collate(items: list[dict]) -> dict:
    """A batch: latents [B, C, T', F'] float32 (VAE-scaled), text_emb [B, D], caption list[str],
    id list[str], meta list[dict] (ground-truth attributes where the data set has them)."""
    return {
        "latents": torch.stack([i["latents"] for i in items]),
        "text_emb": torch.stack([i["text_emb"] for i in items]),
        "caption": [i["caption"] for i in items],
        "id": [i["id"] for i in items],
        "meta": [i["meta"] for i in items],
    }


class LatentDataModule(pl.LightningDataModule):
    """Batches of cached latents + text embeddings for train/val/test, sharded over DDP ranks.

    ``expected`` is the identity the configured models give; a cache built otherwise is refused
    with a message that lists the differences.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        batch_size: int,
        *,
        expected: CacheIdentity | None = None,
        num_workers: int = 0,
        seed: int = 0,
        resident: bool = False,
    ):
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.resident = resident
        self.expected = expected
        self.manifest: CacheManifest | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.manifest is None:
            self.manifest = CacheManifest.read(self.cache_dir)
            if self.expected is not None:
                self.manifest.check(self.expected, self.cache_dir)

    @property
    def null_text_embedding(self) -> torch.Tensor:
        """The empty-caption embedding [D], the unconditional input of classifier-free guidance."""
        self.setup()
        return torch.load(self.cache_dir / self.manifest.null_text_embedding, weights_only=True)

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return _rank_world()

    def _loader(self, split: str, shuffle: bool, even: bool, repeat: bool = False) -> DataLoader:
        self.setup()
        rank, world = self._rank_world()
        stream = LatentShardStream(
            self.cache_dir,
            split,
            self.manifest,
            shuffle=shuffle,
            seed=self.seed,
            even=even,
            rank=rank,
            world_size=world,
        )
        return GroupSignalSafeDataLoader(
            RepeatingStream(stream, self.batch_size, self._consumed_batches()) if repeat else stream,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
        )

    def _consumed_batches(self) -> int:
        """Batches already trained on (restored from a checkpoint) — skipped when the stream restarts."""
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_step) * int(trainer.accumulate_grad_batches) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        """Endless, reshuffled each pass: training is measured in optimizer steps (max_steps).
        Refuses a split too small to give every rank's every worker an item: the endless stream
        would otherwise spin forever without yielding a batch. With ``resident`` the whole split
        is held on the training device instead (:class:`ResidentTrainBatches`)."""
        self.setup()
        rank, world = self._rank_world()
        if self.resident:
            latents, text_emb = load_split_tensors(self.cache_dir, "train", self.manifest)
            batches = ResidentTrainBatches(
                latents,
                text_emb,
                self.batch_size,
                scale=float(self.manifest.identity.vae.get("scaling_factor", 1.0)),
                seed=self.seed,
                rank=rank,
                world_size=world,
                skip_batches=self._consumed_batches(),
            )
            trainer = getattr(self, "trainer", None)
            return batches.to(trainer.strategy.root_device) if trainer is not None else batches
        consumers = world * max(1, self.num_workers)
        count = self.manifest.splits["train"].count if "train" in self.manifest.splits else 0
        if count < consumers:
            raise EmptyTrainingSetError(
                f"latent cache {self.cache_dir}: the train split has {count} usable item(s); "
                f"{world} rank(s) × {max(1, self.num_workers)} loader worker(s) need at least {consumers} "
                "(check the cache build's report of skipped clips, or use fewer ranks/workers)"
            )
        return self._loader("train", shuffle=True, even=True, repeat=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, even=True)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, even=False)
