import pytest
import torch

from bsa.diffusion import (
    PARAMETERIZATIONS,
    eps_from_v,
    eps_from_x,
    prediction_from_x,
    v_from_x_eps,
    x_from_eps,
    x_from_prediction,
    x_from_v,
)


@pytest.fixture
def state(schedule, gen):
    t = torch.randint(0, 1000, (6,), generator=gen)
    alpha, sigma = schedule.alpha_sigma(t)
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64, generator=gen)
    eps = torch.randn(6, 3, 4, 5, dtype=torch.float64, generator=gen)
    z = alpha.view(-1, 1, 1, 1) * x + sigma.view(-1, 1, 1, 1) * eps
    return x, eps, z, alpha, sigma


def test_x_eps_v_recover_the_truth(state):
    x, eps, z, alpha, sigma = state
    torch.testing.assert_close(x_from_eps(z, eps, alpha, sigma), x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(eps_from_x(z, x, alpha, sigma), eps, rtol=1e-10, atol=1e-10)
    v = v_from_x_eps(x, eps, alpha, sigma)
    torch.testing.assert_close(x_from_v(z, v, alpha, sigma), x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(eps_from_v(z, v, alpha, sigma), eps, rtol=1e-10, atol=1e-10)


def test_v_hand_value():
    # α = 0.6, σ = 0.8: v = 0.6·ε − 0.8·x
    a, s = torch.tensor([0.6], dtype=torch.float64), torch.tensor([0.8], dtype=torch.float64)
    x, e = torch.tensor([[2.0]], dtype=torch.float64), torch.tensor([[-1.0]], dtype=torch.float64)
    assert v_from_x_eps(x, e, a, s).item() == pytest.approx(0.6 * -1.0 - 0.8 * 2.0)
    z = a * x + s * e  # 0.4
    assert x_from_v(z, v_from_x_eps(x, e, a, s), a, s).item() == pytest.approx(2.0)


@pytest.mark.parametrize("p", PARAMETERIZATIONS)
def test_prediction_round_trip(state, gen, p):
    _, _, z, alpha, sigma = state
    x_hat = torch.randn(z.shape, dtype=torch.float64, generator=gen)  # any prediction, not the truth
    pred = prediction_from_x(x_hat, z, alpha, sigma, p)
    torch.testing.assert_close(x_from_prediction(pred, z, alpha, sigma, p), x_hat, rtol=1e-10, atol=1e-10)


def test_unknown_parameterization(state):
    x, _, z, alpha, sigma = state
    with pytest.raises(ValueError, match="unknown parameterization"):
        x_from_prediction(x, z, alpha, sigma, "score")
