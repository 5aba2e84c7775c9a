import pytest
import torch

from bsa.diffusion import CLEAN, guided_prediction, sample, step_grid


@pytest.mark.parametrize("n", [1, 4, 25, 200])
def test_oracle_denoiser_on_point_mass_returns_the_point(schedule, gen, n):
    """Data = a single point c: the ideal denoiser is x̂ ≡ c, and DDIM follows z_t = α_t c + σ_t ε₀."""
    c = torch.randn(2, 8, 6, 4, dtype=torch.float64, generator=gen)
    noise = torch.randn(c.shape, dtype=torch.float64, generator=gen)
    grid = step_grid(n)
    a_T, s_T = schedule.alpha_sigma(grid[:1])
    eps0 = (noise - a_T * c) / s_T
    seen = []

    def oracle(z, t):
        a, s = schedule.alpha_sigma(t)
        seen.append(int(t[0]))
        # the trajectory stays on the ray α_t c + σ_t ε₀
        torch.testing.assert_close(
            z, a.view(-1, 1, 1, 1) * c + s.view(-1, 1, 1, 1) * eps0, rtol=1e-9, atol=1e-9
        )
        return c.clone()

    out = sample(oracle, noise, grid, schedule)
    torch.testing.assert_close(out, c, rtol=0, atol=1e-12)
    assert seen == grid.tolist(), "one network call per grid point"


def test_conditional_sampling_with_guidance_uses_one_batched_call_per_step(schedule, gen):
    calls = []
    weight = torch.randn(4, dtype=torch.float64, generator=gen)

    def net(z, t, cond):
        calls.append(z.shape[0])
        return 0.5 * z + cond.sum(-1).view(-1, 1, 1) * weight.view(1, -1, 1)

    cond = torch.randn(3, 5, dtype=torch.float64, generator=gen)
    null = torch.zeros(5, dtype=torch.float64)
    noise = torch.randn(3, 4, 2, dtype=torch.float64, generator=gen)
    grid = step_grid(8)
    out = sample(net, noise, grid, schedule, cond=cond, null_cond=null, guidance_scale=3.0)
    assert calls == [6] * 8, "CFG: conditional + unconditional as one batch of 2B per step"

    # the same result by hand: guided x̂ then DDIM
    def guided(z, t):
        return guided_prediction(net(z, t, cond), net(z, t, null.expand_as(cond)), 3.0)

    torch.testing.assert_close(out, sample(guided, noise, grid, schedule), rtol=1e-12, atol=1e-12)
    calls.clear()
    sample(net, noise, grid, schedule, cond=cond)
    assert calls == [3] * 8, "guidance_scale 1: one conditional call per step"


def test_guided_prediction_hand_values():
    xc, xu = torch.tensor([[3.0]]), torch.tensor([[1.0]])
    assert guided_prediction(xc, xu, 2.5).item() == pytest.approx(1 + 2.5 * 2)
    per_example = guided_prediction(
        torch.tensor([[3.0], [3.0]]), torch.tensor([[1.0], [1.0]]), torch.tensor([1.0, 0.0])
    )
    assert per_example.flatten().tolist() == [3.0, 1.0]


def test_guidance_without_null_cond_is_an_error(schedule):
    with pytest.raises(ValueError, match="null_cond"):
        sample(
            lambda z, t, c: z,
            torch.zeros(1, 2),
            step_grid(2),
            schedule,
            cond=torch.zeros(1, 3),
            guidance_scale=2.0,
        )


def test_callback_sees_every_step(schedule):
    steps = []
    sample(
        lambda z, t: torch.zeros_like(z),
        torch.ones(1, 2, dtype=torch.float64),
        step_grid(4),
        schedule,
        callback=lambda i, t, z, x: steps.append((i, t)),
    )
    assert steps == [(0, 999), (1, 749), (2, 499), (3, 249)]
    assert CLEAN == -1


@pytest.mark.parametrize("guided", [False, True])
def test_compiled_sampling_gives_the_eager_latents_and_compiles_once(guided):
    """eval.compile: the pipeline samples through a torch.compile'd denoiser call (on the GPU,
    mode reduce-overhead replays it as CUDA graphs); traced here with the eager backend, which must
    give the eager pipeline's latents bit for bit, CFG and w-conditioned students alike."""
    from diffusers import UNet2DConditionModel

    from bsa.diffusion import audioldm_schedule
    from bsa.models.denoiser import Denoiser
    from bsa.models.pipeline import TextToAudio
    from bsa.models.unet import audioldm_unet_config, with_guidance_input

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**audioldm_unet_config("tiny", 6, 8, (8, 4))).eval()
    denoiser = Denoiser(with_guidance_input(unet) if guided else unet, audioldm_schedule())
    text, null = torch.randn(2, 6), torch.zeros(6)
    eager = TextToAudio(denoiser, None, None, None, null).latents(text, [1, 2], 4, 2.5)
    pipe = TextToAudio(denoiser, None, None, None, null, compile={"backend": "eager"})
    compiled = pipe.latents(text, [1, 2], 4, 2.5)
    assert torch.equal(compiled, eager)
    first = pipe.denoise_call()
    pipe.latents(text, [3, 4], 4, 2.5)
    assert pipe.denoise_call() is first and first is not denoiser  # one compiled call per pipeline


def test_guidance_interval_guides_only_the_steps_inside_it(schedule, gen):
    """eval.guidance_interval (Kynkäänniemi et al. 2024): CFG (one batch of 2B) at the steps whose
    t lies in [t_lo, t_hi], the conditional model alone (B) at the others; an interval holding the
    whole grid is plain CFG, one holding none of it is scale 1."""
    from bsa.diffusion import guidance_active, network_calls

    assert guidance_active(500, None) is True and guidance_active(500, (0, 499)) is False
    assert guidance_active(torch.tensor([0, 499, 500, 999]), (0, 499)).tolist() == [True, True, False, False]
    assert network_calls(8, False, 2.5) == 16 and network_calls(8, False, 2.5, guided_steps=5) == 13
    assert (
        network_calls(8, True, 2.5, guided_steps=5) == 8 and network_calls(8, False, 1.0, guided_steps=5) == 8
    )
    calls = []
    weight = torch.randn(4, dtype=torch.float64, generator=gen)

    def net(z, t, cond):
        calls.append((int(t[0]), z.shape[0]))
        return 0.5 * z + cond.sum(-1).view(-1, 1, 1) * weight.view(1, -1, 1)

    cond = torch.randn(3, 5, dtype=torch.float64, generator=gen)
    null = torch.zeros(5, dtype=torch.float64)
    noise = torch.randn(3, 4, 2, dtype=torch.float64, generator=gen)
    grid = step_grid(8)  # 999, 874, …, 124
    out = sample(
        net, noise, grid, schedule, cond=cond, null_cond=null, guidance_scale=3.0, guidance_interval=(0, 600)
    )
    assert calls == [(int(t), 6 if t <= 600 else 3) for t in grid]

    def by_hand(z, t):
        scale = 3.0 if int(t[0]) <= 600 else 1.0
        return guided_prediction(net(z, t, cond), net(z, t, null.expand_as(cond)), scale)

    torch.testing.assert_close(out, sample(by_hand, noise, grid, schedule), rtol=1e-12, atol=1e-12)
    everywhere = sample(net, noise, grid, schedule, cond=cond, null_cond=null, guidance_scale=3.0)
    nowhere = sample(net, noise, grid, schedule, cond=cond)
    kw = {"cond": cond, "null_cond": null, "guidance_scale": 3.0}
    assert torch.equal(sample(net, noise, grid, schedule, **kw, guidance_interval=(0, 999)), everywhere)
    assert torch.equal(sample(net, noise, grid, schedule, **kw, guidance_interval=(0, 100)), nowhere)
    assert not torch.allclose(out, everywhere) and not torch.allclose(out, nowhere)


@pytest.mark.parametrize("guided", [False, True])
def test_pipeline_guidance_interval_and_its_network_calls(guided):
    """The pipeline's interval: a CFG teacher guides inside it only; a w-conditioned student gets
    w = 1 outside it. Its NFE counts two calls per guided step of a CFG teacher, one otherwise."""
    from diffusers import UNet2DConditionModel

    from bsa.diffusion import audioldm_schedule
    from bsa.models.denoiser import Denoiser
    from bsa.models.pipeline import TextToAudio
    from bsa.models.unet import audioldm_unet_config, with_guidance_input

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**audioldm_unet_config("tiny", 6, 8, (8, 4))).eval()
    denoiser = Denoiser(with_guidance_input(unet) if guided else unet, audioldm_schedule())
    with (
        torch.no_grad()
    ):  # the guidance input starts at zero (the student starts as the teacher): make w matter
        for p in denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    text, null = torch.randn(2, 6), torch.zeros(6)
    seen = []
    forward = denoiser.forward

    def spy(z, t, *args):
        seen.append((int(t[0]), z.shape[0], args[1].tolist() if guided else None))
        return forward(z, t, *args)

    denoiser.forward = spy
    pipe = TextToAudio(denoiser, None, None, None, null, base_steps=8, guidance_interval=(0, 600))
    limited = pipe.latents(text, [1, 2], 4, 2.5)  # grid 999, 749, 499, 249
    if guided:
        assert seen == [
            (999, 2, [1.0, 1.0]),
            (749, 2, [1.0, 1.0]),
            (499, 2, [2.5, 2.5]),
            (249, 2, [2.5, 2.5]),
        ]
    else:
        assert [(t, b) for t, b, _ in seen] == [(999, 2), (749, 2), (499, 4), (249, 4)]
    assert pipe.network_calls(4, 2.5) == (4 if guided else 6)
    full = TextToAudio(denoiser, None, None, None, null, base_steps=8)
    assert full.network_calls(4, 2.5) == (4 if guided else 8)
    assert not torch.equal(limited, full.latents(text, [1, 2], 4, 2.5))


def test_a_teacher_with_a_guidance_interval_is_scored_against_the_teacher_as_it_is():
    """bsa evaluate of the teacher at its own steps has no teacher to pair with (it is the
    teacher) — unless eval.guidance_interval samples it otherwise: then it is paired with the
    teacher guided at every step (FAD vs teacher, per-clip differences)."""
    from pathlib import Path

    from bsa.config import load_config
    from bsa.experiment.evaluate import teacher_reference

    exp = Path(__file__).resolve().parents[1] / "experiments/embedded-cpu.yaml"
    assert teacher_reference(load_config([exp], ["eval.steps=200"])) is None
    assert (
        teacher_reference(load_config([exp], ["eval.steps=200", "eval.guidance_interval=[0,800]"]))
        == "embedded:teacher"
    )
