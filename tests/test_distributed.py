"""Evaluation under DDP, on two CPU processes (gloo): every rank ends with the statistics and the
features of the whole set, in the order of a single-process run (the captions' order: CLAP
score and attribute accuracy pair row i with caption i)."""

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
