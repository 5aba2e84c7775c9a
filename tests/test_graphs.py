"""CUDA graphs of the denoiser calls (bsa.models.graphs): the CPU fallback here; the captures
themselves need a GPU (the device job runs this file there: experiments/gpu/speed.sh)."""

import pytest
import torch
from test_distill import batch, module, tiny_denoiser

from bsa.diffusion import sample, step_grid
from bsa.models.graphs import GraphedCall, GraphedLoop


# `make test` deselects the gpu marker (CI has no GPU); experiments/gpu/speed.sh runs this file there
def needs_gpu(test):
    no_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
    return pytest.mark.gpu(no_gpu(test))


def _inputs(device="cpu", n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 8, 8, 4, generator=g).to(device)
    t = torch.randint(0, 1000, (n,), generator=g).to(device)
    return z, t, torch.randn(n, 6, generator=g).to(device)


def test_on_the_cpu_a_graphed_call_is_the_eager_call_and_captures_nothing():
    d = tiny_denoiser().eval()
    call = GraphedCall(d)
    with torch.no_grad():
        assert torch.equal(call(*_inputs()), d(*_inputs()))
    assert call.captures == 0


def _student_loop(d, steps=4):
    """A guided student's whole sampling loop, the grid on the CPU (read without a device sync)."""
    grid = step_grid(steps)
    return lambda z, c, w: sample(lambda z_, t_: d(z_, t_, c, w), z, grid, d.schedule)


def _loop_inputs(device="cpu", n=4, seed=0):
    z, _, c = _inputs(device, n, seed)
    return z, c, torch.full((n,), 2.5, device=device)


def test_on_the_cpu_a_graphed_loop_is_the_eager_loop_and_captures_nothing():
    d = tiny_denoiser(guided=True).eval()
    loop = GraphedLoop(_student_loop(d))
    assert torch.equal(loop(*_loop_inputs()), _student_loop(d)(*_loop_inputs()))
    assert loop.captures == 0


def test_a_distillation_module_with_graphs_trains_on_the_cpu_exactly_as_without():
    results = []
    for graphs in (False, True):
        m = module(cuda_graphs=graphs)
        opt = torch.optim.SGD(m.student.parameters(), lr=1e-2)
        for k in range(3):
            loss, _ = m.distillation_loss(**dict(zip(("latents", "text"), batch(k).values(), strict=True)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        results.append(torch.cat([p.detach().flatten() for p in m.student.parameters()]))
        assert all(c.captures == 0 for c in m._graphed.values())
    assert torch.equal(*results)


def test_graphs_are_not_kept_beside_a_compiled_module():
    assert module(cuda_graphs=True, compile={"backend": "eager"})._graphed == {}
    assert set(module(cuda_graphs=True)._graphed) == {"teacher", "student"}


@needs_gpu
def test_graphed_sampling_calls_match_eager_ones_and_capture_once_per_shape():
    d = tiny_denoiser().cuda().eval()
    call = GraphedCall(d)
    with torch.no_grad():
        for seed in range(3):  # new inputs through the same graph
            a, b = call(*_inputs("cuda", seed=seed)), d(*_inputs("cuda", seed=seed))
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert call.captures == 1
        first = call(*_inputs("cuda", seed=0))
        call(*_inputs("cuda", seed=1))
        # the returned tensor is the caller's: the next replay does not overwrite it
        torch.testing.assert_close(first, d(*_inputs("cuda", seed=0)), rtol=1e-5, atol=1e-5)
        call(*_inputs("cuda", n=2))
        assert call.captures == 2


@needs_gpu
def test_past_max_graphs_new_shapes_run_eagerly():
    d = tiny_denoiser().cuda().eval()
    call = GraphedCall(d, max_graphs=1)
    with torch.no_grad():
        call(*_inputs("cuda", n=4))
        out = call(*_inputs("cuda", n=3))
    assert call.captures == 1 and out.shape[0] == 3


@needs_gpu
@pytest.mark.parametrize("mode, guided", [("progressive", False), ("guided", True), ("progressive", True)])
def test_graphed_distillation_steps_reach_the_weights_of_eager_ones(mode, guided):
    """Forward and backward replayed from graphs: the same losses and, after Adam steps, the
    same weights as eager training (fp32; tolerance for cuDNN's algorithm choice)."""
    weights, losses = [], []
    for graphs in (False, True):
        m = module(mode=mode, guided_student=guided, cuda_graphs=graphs).cuda()
        opt = torch.optim.Adam(m.student.parameters(), lr=1e-3)
        run = []
        for k in range(5):
            b = {key: v.cuda() for key, v in batch(k).items()}
            loss, _ = m.distillation_loss(b["latents"], b["text_emb"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
        weights.append(torch.cat([p.detach().flatten() for p in m.student.parameters()]))
        if graphs:
            assert m._graphed["student"].captures == 1
            assert m._graphed["teacher"].captures == 1
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(weights[1], weights[0], rtol=1e-4, atol=1e-5)


@needs_gpu
def test_a_graphed_sampling_loop_matches_the_eager_loop_for_new_inputs():
    """The whole 4-step loop as one graph: each replay takes the new inputs (copied into the
    graph's buffers) and returns the caller's own tensor."""
    d = tiny_denoiser(guided=True).cuda().eval()
    loop, eager = GraphedLoop(_student_loop(d)), _student_loop(d)
    with torch.no_grad():
        outs = [loop(*_loop_inputs("cuda", seed=seed)) for seed in range(3)]
        for seed, out in enumerate(outs):
            torch.testing.assert_close(out, eager(*_loop_inputs("cuda", seed=seed)), rtol=1e-5, atol=1e-5)
        assert loop.captures == 1
        loop(*_loop_inputs("cuda", n=2))
        assert loop.captures == 2


@needs_gpu
def test_a_population_trains_from_graphs_as_it_does_eagerly():
    """A population of three (its vmapped teacher and student calls captured, trainer.cuda_graphs)
    trains three steps as the eager one does: the same losses and members' weights."""
    from test_population import _stage_modules, _train

    results = []
    for graphs in (False, True):
        population, _ = _stage_modules(teachers_of_their_own=True, cuda_graphs=graphs)
        population = population.cuda()
        g = torch.Generator().manual_seed(1)
        latents, text = torch.randn(4, 4, 8, 4, generator=g).cuda(), torch.randn(4, 6, generator=g).cuda()
        _train(population, 3, latents, text, clip=0.05)
        results.append((population, population._graphed))
    (eager, _), (graphed, calls) = results
    assert calls["student"].captures >= 1 and calls["teacher"].captures >= 2  # shared z_t, then per member
    for k in range(3):
        a, b = eager.member(k).student.unet.state_dict(), graphed.member(k).student.unet.state_dict()
        for name in a:
            torch.testing.assert_close(b[name], a[name], atol=5e-4, rtol=0, msg=f"{k} {name}")


def _fake_captures(monkeypatch):
    """Graphs 'captured' on the CPU: the capture returns the eager call, held only by the
    GraphedCall; weak references tell when it is gone."""
    import weakref

    import bsa.models.graphs as graphs

    refs = []

    class Captured:
        def __init__(self, module):
            self.module = module

        def __call__(self, *args):
            return self.module(*args)

    def capture(self, args, grad):
        captured = Captured(self.module)
        refs.append(weakref.ref(captured))
        self.captures += 1
        return captured

    monkeypatch.setattr(graphs, "graphs_available", lambda *tensors: True)
    monkeypatch.setattr(graphs.GraphedCall, "_capture", capture)
    return refs


def test_release_drops_the_captured_graphs_and_a_later_call_captures_again(monkeypatch):
    import gc

    refs = _fake_captures(monkeypatch)
    d = tiny_denoiser().eval()
    call = GraphedCall(d)
    with torch.no_grad():
        first = call(*_inputs())
        assert call.captures == 1 and call.release() == 1
        gc.collect()
        assert refs[0]() is None  # nothing else held the graph: its memory pool goes with it
        assert torch.equal(call(*_inputs()), first) and call.captures == 2
    assert call.release() == 1 and call.release() == 0


def test_a_stage_module_releases_its_graphs_when_its_training_ends(monkeypatch):
    """Lightning's teardown after fit, and a population's stage end before its members' exports
    (MemberStageEnd), leave no graph of the stage's training calls alive."""
    import gc

    from bsa.callbacks.population import MemberStageEnd

    refs = _fake_captures(monkeypatch)
    m = module(cuda_graphs=True).train()
    m.distillation_loss(**dict(zip(("latents", "text"), batch(0).values(), strict=True)))
    assert len(refs) == 2 and all(r() is not None for r in refs)  # the teacher's call and the student's
    m.teardown("fit")
    gc.collect()
    assert all(r() is None for r in refs)

    order = []

    class Trainer:
        global_step = 4

    class Module:
        def release_graphs(self):
            order.append("release")

        def member(self, k):
            order.append(f"member {k}")

    class Promotion:
        promoted = None

        def on_train_end(self, trainer, module):
            pass

    members = [{"name": "a", "callbacks": [Promotion()], "loggers": [], "done": False, "scored": False}]
    MemberStageEnd(4, members).on_train_end(Trainer(), Module())
    assert order == ["release", "member 0"]


def test_a_released_stage_drops_the_gradients_that_would_pin_its_graphs_memory(monkeypatch):
    """A graphed backward hands back its static gradient buffers (views into the graph's pool) and
    autograd keeps them as the parameters' ``.grad``: after the graphs are released those gradients
    would hold the pool's memory (on an H100 14.6 of 30.6 MB stayed reserved, 2026-12-08). The
    release drops them; a module without graphs keeps its gradients."""
    _fake_captures(monkeypatch)
    for graphed in (True, False):
        m = module(cuda_graphs=graphed).train()
        loss, _ = m.distillation_loss(**dict(zip(("latents", "text"), batch(0).values(), strict=True)))
        loss.backward()
        assert any(p.grad is not None for p in m.student.parameters())
        m.release_graphs()
        left = [p.grad for p in m.parameters() if p.grad is not None]
        assert (left == []) == graphed, graphed


def test_a_scorers_pipeline_gives_its_graphs_back_after_sampling(monkeypatch):
    """A stage's evaluation builds a pipeline per model it scores (a population's members one after
    another): the graphs of each are released when its sampling is done, not left to the garbage
    collector (a captured call sits in a reference cycle with its module)."""
    import gc
    import types

    from bsa.callbacks.evaluation import StageScorer
    from bsa.models.pipeline import TextToAudio

    refs = _fake_captures(monkeypatch)
    made = []

    class Pipe(TextToAudio):
        def latents(self, text_emb, seeds, steps, scale):
            made.append(self)
            call = self.denoise_call()
            return call(torch.zeros(len(seeds), 8, 8, 4), torch.zeros(len(seeds), dtype=torch.long), text_emb)

        def waveforms(self, z):
            return z.flatten(1)

    monkeypatch.setattr("bsa.models.pipeline.TextToAudio", Pipe)
    scorer = types.SimpleNamespace(
        vae=None, vocoder=None, null=torch.zeros(6), base_steps=200, cuda_graphs=True, device="cpu",
        batch_size=2, grid_power=1.0, guidance_scale=2.5,
        set=types.SimpleNamespace(text_emb=torch.randn(3, 6), seeds=[0, 1, 2]),
    )  # fmt: skip
    d = tiny_denoiser().eval()
    with torch.no_grad():
        StageScorer.generate_latents(scorer, d, 4, [0, 1, 2])
    gc.collect()
    assert len({id(p) for p in made}) == 1 and len(refs) == 2  # batches of 2 and 1: two shapes
    assert all(r() is None for r in refs)


@needs_gpu
def test_released_graphs_give_their_memory_back():
    """A stage's captured training calls hold their memory pools until released (a population of
    17 ran out of an H100's 80 GB at its third stage, the first two stages' graphs still held). A
    graph's pool is reserved memory that ``empty_cache`` cannot return while the graph lives — not
    allocated memory, which the optimizer's state fills (the first version of this test measured
    that, and failed on an H100 with the release working). The training's last gradients alias the
    pools and go with the release (before, 14.6 of 30.6 MB stayed reserved on an H100, 2026-12-08)."""
    from test_population import _stage_modules, _train

    def pools() -> int:  # reserved beyond what tensors hold, after everything returnable is returned
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        return torch.cuda.memory_reserved() - torch.cuda.memory_allocated()

    population, _ = _stage_modules(teachers_of_their_own=True, cuda_graphs=True)
    population = population.cuda()
    g = torch.Generator().manual_seed(1)
    latents, text = torch.randn(64, 4, 8, 4, generator=g).cuda(), torch.randn(64, 6, generator=g).cuda()
    _train(population, 2, latents, text, clip=0.05)
    held = pools()
    population.release_graphs()
    left = pools()
    assert held > 0 and left < held / 4, (held, left)
