"""Evaluation under DDP, on two CPU processes (gloo): every rank ends with the statistics and the
features of the whole set, in the order of a single-process run (the captions' order: CLAP
score and attribute accuracy pair row i with caption i)."""

import pytest
import torch
import torch.multiprocessing as mp

from bsa.metrics.embedded import AudioFeatures


def _features(idx: list[int]) -> AudioFeatures:
    g = torch.Generator().manual_seed(0)
    emb, joint, logits = (
        torch.randn(10, 5, generator=g),
        torch.randn(10, 3, generator=g),
        torch.randn(10, 4, generator=g),
    )
    return AudioFeatures(emb[idx], {"source": logits[idx]}, joint[idx])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from bsa.callbacks.evaluation import gather_features, reduced_stats

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    mine = list(range(rank, 10, world))  # the scorer's split: clips r, r + W, …
    local = _features(mine)
    gathered = gather_features(local)
    stats = reduced_stats(local)
    torch.save({"gathered": gathered, "stats": stats}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_gather_and_reduce_across_two_ranks(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    from bsa.metrics.suite import stats_of

    whole = _features(list(range(10)))
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        torch.testing.assert_close(got["gathered"].embedding, whole.embedding)
        torch.testing.assert_close(got["gathered"].logits["source"], whole.logits["source"])
        torch.testing.assert_close(got["gathered"].audio_joint, whole.audio_joint)
        mu, cov = got["stats"].mean_cov()
        mu_ref, cov_ref = stats_of(whole).mean_cov()
        assert got["stats"].count == 10
        torch.testing.assert_close(torch.as_tensor(mu), torch.as_tensor(mu_ref))
        torch.testing.assert_close(torch.as_tensor(cov), torch.as_tensor(cov_ref))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _guarded_ddp_worker(rank: int, port: int, out: str, poisoned: tuple[int, ...], fused: bool) -> None:
    """One rank of a 2-process Lightning DDP distillation (gloo) with AdamW (``fused``), whose loss on
    rank 1 is NaN at the optimizer steps ``poisoned`` while its gradients stay finite (a NaN added
    to the loss has no gradient): what the rank's guard decided, read back from its files."""
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    import lightning.pytorch as pl
    from test_distill import batch, module
    from torch.utils.data import DataLoader

    import bsa.lit.guard as guard
    from bsa.experiment.build import ddp_strategy

    host_reads = []
    agree = guard._all_ranks_agree
    guard._all_ranks_agree = lambda *a: host_reads.append(1) or agree(*a)
    m = module(lr=1e-2, fused_adamw=fused)
    m.nonfinite_check_every = 2
    checked = m.guard

    def poison(loss):
        if rank == 1 and m.trainer.global_step in poisoned:
            loss = loss + float("nan")
        return checked(loss)

    m.guard = poison
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=ddp_strategy(2, 25),
        max_steps=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(m, DataLoader([batch(k) for k in range(12)], batch_size=None))
    state = trainer.optimizers[0].state
    torch.save(
        {
            "student": {k: v.clone() for k, v in m.student.state_dict().items()},
            "adam_steps": sorted({int(s["step"]) for s in state.values()}),
            "skipped": m._nonfinite_total,
            "host_reads": len(host_reads),
            "on_device": m._device_guard(),
        },
        f"{out}/rank{rank}.pt",
    )


@pytest.mark.parametrize("fused", [True, False])
def test_ddp_ranks_skip_a_step_that_one_rank_found_not_finite(tmp_path, fused):
    """A NaN loss on rank 1 alone, with finite gradients, skips that step on both DDP ranks, so both
    end with the same weights, the same Adam step count and the same count of skips. With a fused
    AdamW the guard decides on the device as on one GPU (no read of the device and no collective
    the host waits at, per step; its flag and-ed over the ranks); without, on the host, where
    Lightning refuses a skipped training_step under DDP (the run failed on the first NaN loss)."""
    mp.spawn(_guarded_ddp_worker, args=(_free_port(), str(tmp_path), (1, 4), fused), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for got in ranks:
        assert got["on_device"] == fused and (got["host_reads"] == 0) == fused
        assert got["adam_steps"] == [4], "6 steps, 2 skipped on every rank"
        assert got["skipped"] == 2
    for k, v in ranks[0]["student"].items():
        assert torch.equal(v, ranks[1]["student"][k]), k
