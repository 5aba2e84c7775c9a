"""CUDA graphs of a denoiser's calls, without torch.compile (issue "Speed at AudioLDM scale").

A small UNet at a small batch is bound by kernel launches, not by the GPU: the embedded 3.2 M
model spends ~14 ms a call at batch 1 launching a few hundred kernels that each run for
microseconds. A CUDA graph replays the whole call as one launch. ``GraphedCall`` captures one
graph per input signature (shapes, dtypes, whether a gradient is wanted, autocast) on first use
through ``torch.cuda.make_graphed_callables`` — forward and, where gradients flow, backward — and
replays it afterwards; capture costs a few eager calls, not the minutes of a compilation.

What a graph changes: nothing in the arithmetic — the captured kernels are the eager ones, fed
the same inputs — so outputs match eager ones within floating-point tolerance (tests/test_graphs.py
on the GPU: sampling within 1e-5, five training steps to the same weights within 1e-4).
What it needs: the module's parameters stay the same tensors (optimizers update them in place;
``load_state_dict`` copies into them), static shapes (a new shape captures a new graph, up to
``max_graphs``, then runs eagerly), and no host synchronisation inside the call.
"""

from __future__ import annotations

import gc

import torch


class _Forward(torch.nn.Module):
    """A holder, so that ``make_graphed_callables`` patches this ``forward`` and never the
    denoiser's own (a deep copy of a patched denoiser would replay the original's graph)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = module

    def forward(self, *args):
        return self.inner(*args)


def graphs_available(*tensors: torch.Tensor) -> bool:
    """Graphs run on CUDA tensors, outside another capture."""
    return all(t.is_cuda for t in tensors) and not torch.cuda.is_current_stream_capturing()


def signature(args: tuple[torch.Tensor, ...], grad: bool) -> tuple:
    """What a captured graph is specific to: the inputs' shapes, dtypes and devices, whether a
    gradient is wanted, and autocast."""
    autocast = torch.is_autocast_enabled("cuda")
    return (
        tuple((tuple(a.shape), a.dtype, a.device) for a in args),
        grad,
        autocast,
        torch.get_autocast_dtype("cuda") if autocast else None,
    )


def autocast_for_capture() -> torch.autocast:
    """The autocast now in effect, without its weight cache: a cast cached during a capture would be
    a tensor from outside the graph's memory pool (make_graphed_callables refuses it)."""
    if torch.is_autocast_enabled("cuda"):
        return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)
    return torch.autocast("cuda", enabled=False)


class GraphedCall:
    """``call(*tensors) → tensor``: ``module(*tensors)`` replayed from a CUDA graph per input
    signature; eager on the CPU. The output is a fresh tensor (a replay overwrites the graph's
    own output buffer, and callers such as the two-step distillation target keep the first
    call's output across the second)."""

    def __init__(self, module: torch.nn.Module, max_graphs: int = 8, warmup: int = 3):
        self.module, self.max_graphs, self.warmup = module, max_graphs, warmup
        self._graphs: dict[tuple, object] = {}
        self.captures = 0  # graphs captured so far (tests, logs)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if not graphs_available(*args):
            return self.module(*args)
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.module.parameters())
        key = signature(args, grad)
        call = self._graphs.get(key)
        if call is None:
            if len(self._graphs) >= self.max_graphs:
                return self.module(*args)
            call = self._graphs[key] = self._capture(args, grad)
        return call(*args).clone()

    def release(self) -> int:
        """Drops the captured graphs, so that their memory pools go back to the allocator (a
        graph's pool lives as long as the graph); a later call captures again. Returns how many
        were dropped. The module's gradients go with a graph captured for backward: its backward
        hands back static gradient buffers (detached views into the graph's pool, as
        ``make_graphed_callables`` does), which autograd keeps as a parameter's ``.grad`` when it
        had none — left alive, they pin the pool's memory after the graph is gone (an H100 kept
        14.6 of 30.6 MB of a small population's pools, 2026-12-08)."""
        dropped = len(self._graphs)
        if any(grad for _, grad, *_ in self._graphs):  # signature(): (inputs, grad, autocast, dtype)
            self.module.zero_grad(set_to_none=True)
        self._graphs.clear()
        return dropped

    def _capture(self, args: tuple[torch.Tensor, ...], grad: bool):
        holder = _Forward(self.module)
        samples = tuple(a.detach().clone() for a in args)
        with torch.set_grad_enabled(grad), autocast_for_capture():
            graphed = torch.cuda.make_graphed_callables(
                holder, samples, num_warmup_iters=self.warmup, allow_unused_input=True
            )
        # the warm-up above ran on a side stream, where the parameters' gradient accumulators were
        # first created; autograd then warns on every backward that their stream differs from the
        # replay's — one extra stream wait, nothing wrong
        torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)
        self.captures += 1
        return graphed


def release_graphs(calls) -> None:
    """Drops the captured graphs of ``calls`` (:meth:`GraphedCall.release`) and gives their memory
    back. A captured call is its module's patched ``forward`` closing over the module
    (``make_graphed_callables``): a reference cycle, so only the cycle collector frees the graphs'
    pools — collected here rather than whenever the collector next runs, since it counts Python
    objects, not the GPU memory they hold."""
    if sum(call.release() for call in calls):
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class GraphedLoop:
    """``loop(*tensors) → tensor`` — a whole sampling loop (``bsa.diffusion.sample`` with its grid,
    guidance and denoiser bound) — replayed as one CUDA graph per input signature: one launch for
    all its steps, where :class:`GraphedCall` still pays the sampler's own per-step work between
    replays (a few element-wise kernels and the Python around them), which at batch 1 is as long as
    the embedded model's call itself. Inference only; eager on the CPU and inside another capture.
    The loop may not synchronise with the host: its grid comes on the CPU (the sampler reads it as
    Python integers), every timestep tensor is filled on the device."""

    def __init__(self, loop, max_graphs: int = 8, warmup: int = 2):
        self.loop, self.max_graphs, self.warmup = loop, max_graphs, warmup
        self._graphs: dict[tuple, tuple] = {}
        self.captures = 0

    @torch.no_grad()
    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if not graphs_available(*args):
            return self.loop(*args)
        key = signature(args, False)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                return self.loop(*args)
            entry = self._graphs[key] = self._capture(args)
        graph, inputs, output = entry
        for buffer, a in zip(inputs, args, strict=True):
            buffer.copy_(a)
        graph.replay()
        return output.clone()

    def _capture(self, args: tuple[torch.Tensor, ...]) -> tuple:
        inputs = tuple(a.detach().clone() for a in args)
        autocast = autocast_for_capture()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), autocast:  # warm-up: lazy state (tables, workspaces) first
            for _ in range(self.warmup):
                self.loop(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), autocast:
            output = self.loop(*inputs)
        self.captures += 1
        return graph, inputs, output
