"""bsa.models.population: K UNets called as one vmapped network give each member's own outputs
and gradients (what a population trainer needs to train K weightings at once)."""

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel

from bsa.models.population import Population, group_norm
from bsa.models.unet import audioldm_unet_config


def test_group_norm_by_hand_and_against_torch():
    """Two groups of two channels, one position each: x = [1, 3 | 2, 6] → each group (a, b) maps
    to (−1, +1) (mean (a+b)/2, biased std |a−b|/2); then γ = (1, 2, 3, 4), β = (0, 0, 0, 1)."""
    x = torch.tensor([[1.0, 3.0, 2.0, 6.0]]).reshape(1, 4, 1)
    y = group_norm(x, 2, torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 0.0, 0.0, 1.0]), 0.0)
    assert y.flatten().tolist() == pytest.approx([-1.0, 2.0, -3.0, 5.0])
    x = torch.randn(3, 8, 5, 4)
    norm = torch.nn.GroupNorm(4, 8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    torch.testing.assert_close(group_norm(x, 4, norm.weight, norm.bias, norm.eps), norm(x))


@pytest.mark.parametrize("layout", ["members first", "members second", "shared input"])
def test_group_norm_under_vmap_is_torchs_per_member_forward_and_backward(layout):
    """K members' GroupNorms as one call of torch's kernel (the batching rule folds the members
    into the channels): outputs and gradients of x, γ and β equal each member's own
    ``torch.nn.functional.group_norm`` — whichever dimension the members come in, or none."""
    from torch.func import vmap
    from torch.nn import functional as F

    torch.manual_seed(0)
    k, b, c = 3, 4, 8
    x = (2 * torch.randn(k, b, c, 5, 3, dtype=torch.float64) + 1).requires_grad_()
    w, beta = (torch.randn(k, c, dtype=torch.float64).requires_grad_() for _ in range(2))
    if layout == "shared input":
        x_in, dims, own = x[0], (None, 0, 0), [x[0]] * k
    elif layout == "members second":
        x_in, dims, own = x.transpose(0, 1), (1, 0, 0), list(x)
    else:
        x_in, dims, own = x, (0, 0, 0), list(x)
    out = vmap(lambda x, w, beta: group_norm(x, 4, w, beta, 1e-5), in_dims=dims)(x_in, w, beta)
    ref = torch.stack([F.group_norm(own[i], 4, w[i], beta[i], 1e-5) for i in range(k)])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    ones = torch.randn_like(ref)
    grads = torch.autograd.grad((out * ones).sum(), (x, w, beta))
    expected = torch.autograd.grad((ref * ones).sum(), (x, w, beta))
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)
    if dims[0] is None:
        return  # the affine-free norm of a shared input has nothing to batch
    # without the affine: the normalisation alone
    plain = vmap(lambda x: group_norm(x, 4, None, None, 1e-5), in_dims=dims[0])(x_in)
    torch.testing.assert_close(
        plain, torch.stack([F.group_norm(o, 4, eps=1e-5) for o in own]), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")],
        ),
    ],
)
def test_group_norm_under_autocast_runs_in_the_dtype_torchs_does(device):
    """CUDA autocast runs torch.group_norm in float32 whatever its input (the CPU's in the input's
    dtype); the population's operator, which autocast does not know, must do the same, or a bf16
    population on a GPU would normalise in bf16 where its members alone do not."""
    from torch.func import vmap
    from torch.nn import functional as F

    x = torch.randn(2, 3, 8, 4, 4, device=device).bfloat16()
    w, b = torch.randn(2, 8, device=device), torch.randn(2, 8, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        out = vmap(lambda x, w, b: group_norm(x, 4, w, b, 1e-5))(x, w, b)
        ref = torch.stack([F.group_norm(x[i], 4, w[i], b[i], 1e-5) for i in range(2)])
    assert out.dtype == ref.dtype == (torch.float32 if device == "cuda" else torch.bfloat16)
    torch.testing.assert_close(out, ref)


def _members(k=3):
    torch.manual_seed(0)
    config = audioldm_unet_config("tiny", text_dim=6, latent_channels=4, sample_size=(8, 4))
    base = UNet2DConditionModel(**config).eval()
    members = [copy.deepcopy(base) for _ in range(k)]
    for m in members:
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return members


def _call(unet, z, t, text):
    return unet(z, t, encoder_hidden_states=None, class_labels=text).sample


def test_population_gives_each_member_its_outputs_and_gradients():
    members = _members()
    pop = Population(members)
    z, t, text = torch.randn(3, 2, 4, 8, 4), torch.tensor([10, 900]), torch.randn(2, 6)
    # shared inputs, then one input per member
    shared = pop(z[0], t, encoder_hidden_states=None, class_labels=text, in_dims=(None, None)).sample
    own = pop(z, t, encoder_hidden_states=None, class_labels=text, in_dims=(0, None)).sample
    for k, m in enumerate(members):
        torch.testing.assert_close(shared[k], _call(m, z[0], t, text), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(own[k], _call(m, z[k], t, text), atol=1e-5, rtol=1e-4)
    # the sum of the members' losses: each stacked gradient slice is that member's own gradient
    own.pow(2).mean(dim=(1, 2, 3, 4)).sum().backward()
    names = pop.names
    for k, m in enumerate(members):
        _call(m, z[k], t, text).pow(2).mean().backward()
        for name, stacked in zip(names, pop.stacked, strict=True):
            torch.testing.assert_close(
                stacked.grad[k], dict(m.named_parameters())[name].grad, atol=1e-5, rtol=1e-4
            )
    # a member comes back as an ordinary UNet with its parameters
    back = pop.member(1, members[0])
    torch.testing.assert_close(_call(back, z[1], t, text), _call(members[1], z[1], t, text))
    with pytest.raises(ValueError, match="at least one member"):
        Population([])


# -- PopulationDistillationModule: K weightings trained as one network -------------------------------

WEIGHTINGS = [
    {"weighting": "bsa", "weighting_kwargs": {"floor": 1.0, "gamma": 5.0}},
    {"weighting": "min_snr", "weighting_kwargs": {"gamma": 5.0}},
    {"weighting": "bsa", "weighting_kwargs": {"floor": 0.1, "gamma": float("inf")}},
]


def _stage_modules(teachers_of_their_own: bool, **extra):
    """The population of three students and the three ordinary modules of the same start."""
    from bsa.diffusion import audioldm_schedule
    from bsa.lit.distill import DistillationModule
    from bsa.lit.population import PopulationDistillationModule
    from bsa.models.denoiser import Denoiser
    from bsa.models.population import PopulationUNet
    from bsa.models.unet import with_guidance_input

    schedule = audioldm_schedule()
    unets = [with_guidance_input(m).float() for m in _members(3)]
    teachers = unets if teachers_of_their_own else [unets[0]] * 3
    kw = dict(
        mode="progressive", student_steps=2, teacher_steps=4, lr=1e-3, ema_decay=0.9, total_steps=10, seed=3
    )
    kw.update(extra)  # e.g. cuda_graphs (tests/test_graphs.py)
    null = torch.zeros(6)
    singles = [
        DistillationModule(
            Denoiser(copy.deepcopy(t), schedule, "epsilon"),
            Denoiser(copy.deepcopy(u), schedule, "v_prediction"),
            null,
            weighting=w["weighting"],
            weighting_kwargs=w["weighting_kwargs"],
            **kw,
        )
        for t, u, w in zip(teachers, unets, WEIGHTINGS, strict=True)
    ]
    teacher = (
        PopulationUNet([copy.deepcopy(t) for t in teachers])
        if teachers_of_their_own
        else copy.deepcopy(unets[0])
    )
    population = PopulationDistillationModule(
        Denoiser(teacher, schedule, "epsilon"),
        Denoiser(PopulationUNet([copy.deepcopy(u) for u in unets]), schedule, "v_prediction"),
        null,
        weightings=WEIGHTINGS,
        **kw,
    )
    return population, singles


def _train(module, steps: int, latents, text, clip: float):
    """What Lightning does per step (automatic optimisation), the gradient clipping included."""
    from bsa.lit.population import PopulationDistillationModule

    config = module.configure_optimizers()
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    module.train()
    for _ in range(steps):
        loss, _ = module.distillation_loss(latents, text)
        opt.zero_grad()
        loss.backward()
        if isinstance(module, PopulationDistillationModule):
            module.configure_gradient_clipping(opt, clip, "norm")
        else:  # what Lightning's clipping does for one model
            torch.nn.utils.clip_grad_norm_(list(module.student.parameters()), clip)
        opt.step()
        sched.step()
        module.ema.update(module.student)


def _grads(module) -> dict:
    return {n: p.grad.clone() for n, p in module.student.unet.named_parameters()}


@pytest.mark.parametrize("teachers_of_their_own", [False, True])
def test_a_population_trains_each_member_as_its_own_run_would(teachers_of_their_own):
    """Member k of a population (same batches and draws) trains as a DistillationModule alone with
    member k's weighting would — with one shared teacher (the first progressive stage) and with a
    teacher per member (the later ones): after one step its clipped gradient is that module's (the
    clip, 0.05, binds: a global norm over the population would scale every member alike); after
    three, its student, EMA, teacher and per-level loss sums are that module's. Adam turns the last
    float-level differences of near-zero gradients into up to a few % of a step, hence the looser
    tolerance on the weights (one step of lr 1e-3 moves each weight by up to 1e-3)."""
    population, singles = _stage_modules(teachers_of_their_own)
    g = torch.Generator().manual_seed(1)
    latents, text = torch.randn(4, 4, 8, 4, generator=g), torch.randn(4, 6, generator=g)
    _train(population, 1, latents, text, clip=0.05)
    stacked = _grads(population)
    for k, single in enumerate(singles):
        _train(single, 1, latents, text, clip=0.05)
        for name, grad in _grads(single).items():
            key = f"population.stacked.{population.student.unet.population.names.index(name)}"
            torch.testing.assert_close(stacked[key][k], grad, atol=1e-6, rtol=1e-4, msg=f"{k} {name}")
    _train(population, 2, latents, text, clip=0.05)
    for k, single in enumerate(singles):
        _train(single, 2, latents, text, clip=0.05)
        member = population.member(k)
        for ours, theirs in (
            (member.student.unet.state_dict(), single.student.unet.state_dict()),
            (member.ema.module.unet.state_dict(), single.ema.module.unet.state_dict()),
            (member.teacher.unet.state_dict(), single.teacher.unet.state_dict()),
        ):
            assert ours.keys() == theirs.keys()
            for name in ours:
                torch.testing.assert_close(ours[name], theirs[name], atol=5e-4, rtol=0, msg=f"{k} {name}")
        assert [r["weighted_loss"] for r in member.training_profile()] == pytest.approx(
            [r["weighted_loss"] for r in single.training_profile()], rel=1e-3
        )
    # the members did train apart: their weightings moved them differently
    a, b = (population.member(k).student.unet.state_dict() for k in (0, 1))
    assert max(float((a[n] - b[n]).abs().max()) for n in a) > 1e-3


def test_a_population_refuses_what_it_cannot_train():
    from bsa.diffusion import audioldm_schedule
    from bsa.lit.population import PopulationDistillationModule, clip_grad_norm_per_member
    from bsa.models.denoiser import Denoiser
    from bsa.models.population import PopulationUNet
    from bsa.models.unet import with_guidance_input

    schedule = audioldm_schedule()
    unets = [with_guidance_input(m).float() for m in _members(2)]
    student = Denoiser(PopulationUNet(unets), schedule)
    kw = dict(mode="progressive", student_steps=2, teacher_steps=4)
    with pytest.raises(ValueError, match="1 weightings for a population of 2"):
        PopulationDistillationModule(
            Denoiser(unets[0], schedule), student, torch.zeros(6), weightings=WEIGHTINGS[:1], **kw
        )
    with pytest.raises(ValueError, match="progressive stages"):
        PopulationDistillationModule(
            Denoiser(unets[0], schedule),
            student,
            torch.zeros(6),
            weightings=WEIGHTINGS[:2],
            mode="guided",
            student_steps=2,
        )
    # per-member clipping by hand: member norms 5 and 0.5, max 1 → the first scaled by 1/5, the second kept
    p = torch.nn.Parameter(torch.zeros(2, 2))
    p.grad = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    norms = clip_grad_norm_per_member([p], 1.0)
    assert norms.tolist() == pytest.approx([5.0, 0.5])
    assert p.grad.flatten().tolist() == pytest.approx([0.6, 0.8, 0.3, 0.4], rel=1e-5)


def test_a_population_config_names_what_it_needs():
    from bsa.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="distill.population.*guided_stage=false"):
        load_config(["experiments/debug.yaml"], ["distill.population=[bsa,min_snr]"])
    with pytest.raises(ConfigError, match="distill.population: weighting 'bsa\\(flor=1\\)'"):
        load_config(
            ["experiments/debug.yaml"], ['distill.population=["bsa(flor=1)"]', "distill.guided_stage=false"]
        )
    cfg = load_config(
        ["experiments/debug.yaml"],
        ['distill.population=["bsa(floor=0,gamma=5)"]', "distill.guided_stage=false"],
    )
    from bsa.experiment.population import member_configs

    (member,) = member_configs(cfg)
    assert (
        member.distill.weighting,
        member.distill.bsa_floor,
        member.distill.label,
        member.distill.run_name,
    ) == (
        "bsa",
        0.0,
        "bsa(floor=0,gamma=5)",
        "bsa-floor0-gamma5-seed0",
    )
    assert member.distill.population == []
    from bsa.experiment.population import run_population

    two = load_config(
        ["experiments/debug.yaml"],
        ["distill.population=[bsa]", "distill.guided_stage=false", "trainer.devices=2"],
    )
    with pytest.raises(ConfigError, match="trainer.devices: a population trains in one process"):
        run_population(two)


def test_a_comparison_groups_its_runs_into_populations_of_at_most_the_size_asked():
    from bsa.config import load_config
    from bsa.experiment.compare import planned_runs

    cfg = load_config(
        ["experiments/debug.yaml"],
        [
            "compare.weightings=[bsa,min_snr,'bsa(floor=0,gamma=inf)']",
            "compare.population=2",
            "compare.seeds=[0,1]",
        ],
    )
    guided, populations = planned_runs(cfg, [])
    assert [r["name"] for r in guided] == ["guided-seed0", "guided-seed1"]
    assert [r["members"] for r in populations] == [
        ["bsa-seed0", "min_snr-seed0"],
        ["bsa-floor0-gammainf-seed0"],
        ["bsa-seed1", "min_snr-seed1"],
        ["bsa-floor0-gammainf-seed1"],
    ]
    first = populations[0]["overrides"]
    assert 'distill.population=["bsa", "min_snr"]' in first and "distill.guided_stage=false" in first
    assert "trainer.seed=0" in first and any(
        o.startswith("models.teacher=") and "guided-seed0" in o for o in first
    )
    # the members of other seeds or sets are other populations, each its own folder
    assert len({r["name"] for r in populations}) == 4


def test_a_comparison_scoring_only_some_step_counts_plans_runs_whose_configs_load():
    """distill.score_steps names the students' step counts; the guided run (its plan ends at the
    teacher's step count) must not inherit them, or it fails at load."""
    from bsa.config import load_config
    from bsa.experiment.compare import planned_runs

    user = [
        "compare.weightings=[bsa,min_snr]",
        "compare.population=2",
        "distill.target_steps=2",
        "distill.score_steps=[2]",
    ]
    cfg = load_config(["experiments/debug.yaml"], user)
    for wave in planned_runs(cfg, []):
        for run in wave:
            loaded = load_config(["experiments/debug.yaml"], [*user, *run["overrides"]])
            stages = [s for s in loaded.distill.plan.stages if loaded.distill.scores(s)]
            assert [s.student_steps for s in stages] == ([8] if run["name"].startswith("guided") else [2])


def test_a_member_trains_like_its_population_even_when_built_from_frozen_teachers():
    """Later stages build their students from the previous stage's frozen teachers: the 25-step
    members of a population came out with no trainable parameter, and their error profile's
    gradient norms were 0.0 at every step (results/weighting-study, seed 1, 2026-11-29)."""
    from bsa.models.population import PopulationUNet

    members = [m.requires_grad_(False) for m in _members(2)]
    pop = PopulationUNet(members).requires_grad_(True)
    assert all(p.requires_grad for p in pop.member(1).parameters())
    frozen = PopulationUNet(members).requires_grad_(False)
    assert not any(p.requires_grad for p in frozen.member(0).parameters())


@pytest.mark.parametrize(
    "teachers_of_their_own, device",
    [
        (False, "cpu"),
        (True, "cpu"),
        pytest.param(
            True,
            "cuda",
            marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")],
        ),
    ],
)
def test_a_population_measures_each_members_error_profile_as_the_member_would(
    teachers_of_their_own, device, monkeypatch
):
    """A population's stage end measures its K members' error profiles in one pass
    (``error_profiles``): member k's rows — x-MSE against its own teacher's target, its weighting,
    the gradient norms of its own weighted loss — are those ``member(k).error_profile`` gives, in
    any chunking of the steps and of their gradients; the members differ (their weightings trained
    them apart). On the GPU in full float32 (TF32 convolutions move gradient norms by ~1 %)."""
    if device == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    population, _ = _stage_modules(teachers_of_their_own)
    g = torch.Generator().manual_seed(1)
    latents, text = torch.randn(4, 4, 8, 4, generator=g), torch.randn(4, 6, generator=g)
    population = population.to(device)
    latents, text = latents.to(device), text.to(device)
    _train(population, 2, latents, text, clip=1.0)
    population.eval()
    profiles = population.error_profiles(latents, text, seed=0, grad_clips=3)
    apart = population.error_profiles(latents, text, seed=0, grad_clips=3, batch_items=1, gradient_elements=1)
    assert len(profiles) == population.members == 3
    for k, (rows, rows_apart) in enumerate(zip(profiles, apart, strict=True)):
        own = population.member(k).eval().error_profile(latents, text, seed=0, grad_clips=3)
        assert [r["t"] for r in rows] == [r["t"] for r in own]
        for ours, theirs, chunked in zip(rows, own, rows_apart, strict=True):
            assert ours.keys() == theirs.keys() and "grad_norm" in ours
            assert ours == pytest.approx(theirs, rel=1e-4, abs=1e-9), k
            assert chunked == pytest.approx(ours, rel=1e-4, abs=1e-9), k
    assert profiles[0][0]["weight"] != profiles[1][0]["weight"]
    assert profiles[0][0]["x_mse"] != pytest.approx(profiles[2][0]["x_mse"], rel=1e-6)
    with pytest.raises(ValueError, match="a profile each"):
        population.error_profile(latents, text)
