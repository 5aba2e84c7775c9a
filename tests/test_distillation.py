import numpy as np
import pytest
import torch

from bsa.diffusion import (
    CLEAN,
    DistillationPlan,
    Stage,
    ddim_step,
    distillation_target,
    halving_chain,
    next_timestep,
    sampling_grid,
    step_grid,
    student_step_triples,
    teacher_midpoint,
)


def make_teacher(gen, channels=4):
    """A fixed nonlinear, t-dependent x̂_θ(z, t) — any function works for the identities below."""
    w = torch.randn(channels, channels, dtype=torch.float64, generator=gen) / channels**0.5
    b = torch.randn(channels, dtype=torch.float64, generator=gen)

    def teacher(z, t):
        h = torch.einsum("ij,bj...->bi...", w, z)
        return torch.tanh(h) + 1e-3 * t.double().view(-1, *[1] * (z.ndim - 1)) * b.view(
            1, -1, *[1] * (z.ndim - 2)
        )

    return teacher, w.numpy(), b.numpy()


def student_batch(schedule, gen, n, batch=16):
    grid = step_grid(n)
    i = torch.randint(0, n, (batch,), generator=gen)
    i[0], i[1] = 0, n - 1  # always include the first and the last (→ CLEAN) step
    t, t_mid, s = grid[i], teacher_midpoint(grid, i), next_timestep(grid, i)
    x = torch.randn(batch, 4, 6, 3, dtype=torch.float64, generator=gen)
    eps = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    alpha, sigma = schedule.alpha_sigma(t)
    z_t = alpha.view(-1, 1, 1, 1) * x + sigma.view(-1, 1, 1, 1) * eps
    return z_t, t, t_mid, s


@pytest.mark.parametrize("n", [100, 25, 4, 1])
def test_one_student_step_on_target_equals_two_teacher_steps(schedule, gen, n):
    """The identity that defines x̃: DDIM(t → t'') with x̂ = x̃ lands where two teacher steps land."""
    teacher, _, _ = make_teacher(gen)
    z_t, t, t_mid, s = student_batch(schedule, gen, n)
    x_tilde = distillation_target(teacher, z_t, t, t_mid, s, schedule)
    two_steps = ddim_step(
        ddim_step(z_t, teacher(z_t, t), t, t_mid, schedule),
        teacher(ddim_step(z_t, teacher(z_t, t), t, t_mid, schedule), t_mid),
        t_mid,
        s,
        schedule,
    )
    torch.testing.assert_close(ddim_step(z_t, x_tilde, t, s, schedule), two_steps, rtol=1e-9, atol=1e-9)
    # the last step lands on clean data: the target is the teacher's own final output
    last = s == CLEAN
    assert bool(last.any())
    torch.testing.assert_close(x_tilde[last], two_steps[last], rtol=0, atol=1e-12)


def _reference_target(teacher_np, z, t, t_mid, s, log_snr):
    """Independent transcription (numpy, log-SNR form) of google-research diffusion_distillation
    dpm.py Model.training_losses, the distillation branch."""
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    softplus = lambda v: np.logaddexp(0.0, v)  # noqa: E731
    bc = lambda v: v.reshape(-1, *[1] * (z.ndim - 1))  # noqa: E731

    def predict_eps_from_x(z_, x_, ls):
        ls = bc(ls)
        return np.sqrt(1.0 + np.exp(ls)) * (z_ - x_ / np.sqrt(1.0 + np.exp(-ls)))

    logsnr, logsnr_mid = log_snr(t), log_snr(t_mid)
    is_last = s == CLEAN
    logsnr_s = np.where(is_last, 30.0, log_snr(np.where(is_last, 0, s)))  # masked out below, as jnp.where
    x_pred = teacher_np(z, t)
    eps_pred = predict_eps_from_x(z, x_pred, logsnr)
    z_mid = bc(np.sqrt(sigmoid(logsnr_mid))) * x_pred + bc(np.sqrt(sigmoid(-logsnr_mid))) * eps_pred
    x_pred = teacher_np(z_mid, t_mid)
    eps_pred = predict_eps_from_x(z_mid, x_pred, logsnr_mid)
    a_s, stdv_s = bc(np.sqrt(sigmoid(logsnr_s))), bc(np.sqrt(sigmoid(-logsnr_s)))
    z_teacher = a_s * x_pred + stdv_s * eps_pred
    a_t = bc(np.sqrt(sigmoid(logsnr)))
    stdv_frac = bc(np.exp(0.5 * (softplus(logsnr) - softplus(logsnr_s))))
    x_target = (z_teacher - stdv_frac * z) / (a_s - stdv_frac * a_t)
    return np.where(bc(is_last), x_pred, x_target)


@pytest.mark.parametrize("n", [50, 8, 1])
def test_target_agrees_with_reference_transcription(schedule, gen, n):
    teacher, w, b = make_teacher(gen)

    def teacher_np(z, t):
        return np.tanh(np.einsum("ij,bj...->bi...", w, z)) + 1e-3 * t.astype(np.float64).reshape(
            -1, 1, 1, 1
        ) * b.reshape(1, -1, 1, 1)

    log_snr = lambda t: schedule.log_snr(torch.as_tensor(t)).numpy()  # noqa: E731
    z_t, t, t_mid, s = student_batch(schedule, gen, n)
    ours = distillation_target(teacher, z_t, t, t_mid, s, schedule).numpy()
    ref = _reference_target(teacher_np, z_t.numpy(), t.numpy(), t_mid.numpy(), s.numpy(), log_snr)
    np.testing.assert_allclose(ours, ref, rtol=1e-8, atol=1e-8)


def test_target_with_exact_teacher_recovers_data(schedule, gen):
    """If the teacher is exact for a point mass (x̂ ≡ x), the target is x itself at every step."""
    x = torch.randn(8, 4, 6, 3, dtype=torch.float64, generator=gen)
    grid = step_grid(16)
    i = torch.arange(8) * 2
    t, t_mid, s = grid[i], teacher_midpoint(grid, i), next_timestep(grid, i)
    alpha, sigma = schedule.alpha_sigma(t)
    z_t = alpha.view(-1, 1, 1, 1) * x + sigma.view(-1, 1, 1, 1) * torch.randn(
        x.shape, dtype=torch.float64, generator=gen
    )
    x_tilde = distillation_target(lambda z, tt: x, z_t, t, t_mid, s, schedule)
    torch.testing.assert_close(x_tilde, x, rtol=1e-9, atol=1e-9)


def test_plan_halving_and_errors():
    plan = DistillationPlan(200, 25)
    assert plan.step_counts == [200, 100, 50, 25]
    assert [(st.teacher_steps, st.student_steps) for st in plan.stages] == [(200, 100), (100, 50), (50, 25)]
    assert plan.describe() == "200 → 100 → 50 → 25 (3 stages)"
    assert DistillationPlan(256, 1).step_counts[-3:] == [4, 2, 1]
    assert DistillationPlan(200, 200).stages == []
    # past 25 an odd stage halves to ceil(N/2)
    assert DistillationPlan(200, 1).step_counts == [200, 100, 50, 25, 13, 7, 4, 2, 1]
    assert DistillationPlan(200, 4).stages[-1] == Stage(6, 7, 4)
    with pytest.raises(ValueError, match=r"30 cannot be reached by halving 200.*\[200, 100, 50, 25, 13"):
        DistillationPlan(200, 30)
    with pytest.raises(ValueError, match="12"):
        DistillationPlan(200, 12)


def test_sampling_grid_nests_through_odd_stages():
    """Even halvings give diffusers' trailing grid; after 25 the grids are every other point."""
    for n in (200, 100, 50, 25):
        assert torch.equal(sampling_grid(n, 200), step_grid(n))
    assert sampling_grid(13, 200).tolist() == [40 * i - 1 for i in range(25, 0, -2)]
    assert sampling_grid(4, 200).tolist() == [999, 679, 359, 39]  # hand: 40·{25, 17, 9, 1} − 1
    assert sampling_grid(1, 200).tolist() == [999]
    assert torch.equal(sampling_grid(4), step_grid(4))  # no plan: the trailing grid
    assert torch.equal(sampling_grid(12, 200), step_grid(12))  # off the chain: the trailing grid
    for a, b in zip(halving_chain(200)[:-1], halving_chain(200)[1:], strict=True):
        fine, coarse = sampling_grid(a, 200), sampling_grid(b, 200)
        assert set(coarse.tolist()) <= set(fine.tolist()) and coarse[0] == 999


def test_student_step_triples_even_and_odd():
    t, mid, s = student_step_triples(torch.tensor([999, 749, 499, 249]))
    assert (t.tolist(), mid.tolist(), s.tolist()) == ([999, 499], [749, 249], [499, CLEAN])
    # 25 → 13: twelve two-step pairs, then the last teacher step alone (t' = t, t'' = clean)
    t, mid, s = student_step_triples(step_grid(25))
    assert t.shape[0] == 13 and t[-1] == 39 and mid[-1] == 39 and s[-1] == CLEAN
    assert (t[0], mid[0], s[0]) == (999, 959, 919)
    # and the student's grid is exactly where it samples
    assert torch.equal(t, sampling_grid(13, 200))


def test_odd_tail_target_is_one_teacher_step(schedule, gen):
    """With t' = t the two-step target is the target of the single teacher step t → t''."""
    x = torch.randn(2, 4, 6, 3, dtype=torch.float64, generator=gen)
    teacher = lambda z, tt: 0.5 * z  # noqa: E731 - any deterministic x̂
    t = torch.tensor([39, 39])
    alpha, sigma = schedule.alpha_sigma(t)
    z_t = alpha.view(-1, 1, 1, 1) * x + sigma.view(-1, 1, 1, 1) * torch.randn(
        x.shape, dtype=torch.float64, generator=gen
    )
    clean = torch.full_like(t, CLEAN)
    x_tilde = distillation_target(teacher, z_t, t, t, clean, schedule)
    torch.testing.assert_close(x_tilde, 0.5 * z_t)  # one DDIM step to clean lands on x̂(z_t)
