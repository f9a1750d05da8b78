"""Control variates and the Gaussian Stein control variate (sdlib.control_variates)."""

import math

import pytest
import torch

from sdlib.control_variates import (
    CoefficientConfig,
    EMACoefficient,
    LearnedCoefficient,
    apply_control_variate,
    coefficient_shape,
    optimal_coefficient,
    stein_control_variate,
    stein_control_variate_printed,
)

N, D, SIGMA, ALPHA = 200_000, 3, 0.7, 0.6


def _noised(seed: int = 0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.tensor([0.5, -1.0, 2.0], dtype=dtype)
    eps = torch.randn(N, D, generator=gen, dtype=dtype)
    return ALPHA * x + SIGMA * eps, eps


def _random_mlp(seed: int = 1):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(D, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).double()
    return lambda z: net(z)[:, 0]


BASELINES = {
    "polynomial": lambda z: 1.0 + z[:, 0] * z[:, 1] + 0.5 * z[:, 2] ** 2 - z[:, 1] ** 3 / 3,
    "trigonometric": lambda z: torch.sin(2 * z[:, 0]) + torch.cos(z[:, 1] * z[:, 2]),
    "random_mlp": _random_mlp(),
}


@pytest.mark.parametrize("name", list(BASELINES))
def test_stein_cv_zero_mean(name):
    x_t, eps = _noised()
    h, phi = stein_control_variate(BASELINES[name], x_t, eps, SIGMA)
    assert h.shape == x_t.shape and phi.shape == (N,)
    z = h.mean(0) / (h.std(0) / math.sqrt(N))
    assert z.abs().max() < 4.0, z


def test_printed_form_is_biased():
    x_t, eps = _noised()
    h, _ = stein_control_variate_printed(BASELINES["polynomial"], x_t, eps)
    z = h.mean(0) / (h.std(0) / math.sqrt(N))
    assert z.abs().max() > 10.0, z
    # its mean is (sigma + 1) E[grad phi]
    x = x_t.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(BASELINES["polynomial"](x).sum(), x)
    torch.testing.assert_close(h.mean(0), (1 + SIGMA) * grad.mean(0), atol=0.05, rtol=0.02)


def test_phi_one_mu_one_is_sds():
    gen = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(8, 4, 5, 5, generator=gen), torch.randn(8, 4, 5, 5, generator=gen)
    eps_pred = torch.randn(8, 4, 5, 5, generator=gen)
    sigma = torch.rand(8, generator=gen)
    h, _ = stein_control_variate(lambda z: torch.ones(z.shape[0]) + 0 * z.flatten(1).sum(1),
                                 x_t, eps, sigma)
    assert torch.equal(h, eps)
    assert torch.equal(apply_control_variate(eps_pred, h, 1.0), eps_pred - eps)


def _golden_min(fn, lo: float, hi: float, iters: int = 80) -> float:
    """Golden-section search for the minimiser of a unimodal fn on [lo, hi]."""
    r = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    for _ in range(iters):
        c, d = b - r * (b - a), a + r * (b - a)
        if fn(c) < fn(d):
            b = d
        else:
            a = c
    return 0.5 * (a + b)


def test_closed_form_matches_numerical_minimum():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(5000, 1, generator=gen, dtype=torch.float64)
    f = 0.8 * h + 0.5 * torch.randn(5000, 1, generator=gen, dtype=torch.float64) + 0.3
    grid = torch.linspace(-2, 3, 501, dtype=torch.float64)
    coarse = float(grid[torch.stack([((f - m * h) ** 2).mean() for m in grid]).argmin()])
    mu = float(optimal_coefficient(f, h))
    assert abs(coarse - mu) <= 0.01
    fine = _golden_min(lambda m: float(((f - m * h) ** 2).mean()), -2.0, 3.0)
    assert abs(fine - mu) < 1e-6
    mu_c = float(optimal_coefficient(f, h, centered=True))
    assert abs(_golden_min(lambda m: float((f - m * h).var()), -2.0, 3.0) - mu_c) < 1e-6


def test_coefficient_reduce_shapes():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(4000, 3, 2, 2, generator=gen)
    scale = torch.tensor([1.0, 2.0, -1.0]).view(3, 1, 1)
    f = scale * h
    assert coefficient_shape((3, 2, 2), "channel") == (3, 1, 1)
    torch.testing.assert_close(optimal_coefficient(f, h, "channel"), scale)
    assert optimal_coefficient(f, h, "element").shape == (3, 2, 2)
    assert optimal_coefficient(f, h, "scalar").shape == ()
    with pytest.raises(ValueError, match="reduce"):
        optimal_coefficient(f, h, "pixel")


def test_learned_and_ema_coefficients_converge():
    gen = torch.Generator().manual_seed(0)
    cfg = CoefficientConfig(reduce="element", init=0.0, lr=0.05, decay=0.9)
    learned = LearnedCoefficient(cfg, (2,))
    ema = EMACoefficient(cfg, (2,))
    target = torch.tensor([0.5, -1.5])
    for _ in range(400):
        h = torch.randn(256, 2, generator=gen)
        f = target * h + 0.1 * torch.randn(256, 2, generator=gen)
        learned.update(f, h)
        ema.update(f, h)
    torch.testing.assert_close(learned.mu, target, atol=0.05, rtol=0)
    torch.testing.assert_close(ema.mu, target, atol=0.02, rtol=0)


@pytest.mark.parametrize("cls", [LearnedCoefficient, EMACoefficient])
def test_coefficient_state_round_trip(cls):
    torch.manual_seed(0)
    f, h = torch.randn(64, 3, 2), torch.randn(64, 3, 2)
    a = cls(CoefficientConfig(reduce="channel"), (3, 2))
    for _ in range(5):
        a.update(f, h)
    b = cls(CoefficientConfig(reduce="channel"), (3, 2))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.mu, a.mu)
    a.update(f, h)
    b.update(f, h)
    torch.testing.assert_close(b.mu, a.mu)


def test_grad_scale_is_exact_and_rescues_a_float16_underflow():
    """∇(S·φ)/S is ∇φ (bitwise for S a power of two); in float16 it keeps gradients that
    underflow at S = 1. Bad scales are refused."""
    gen = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(3, 4, 5, 5, generator=gen), torch.randn(3, 4, 5, 5, generator=gen)
    phi = lambda z: (z.sin() * z).flatten(1).sum(1)
    h1, v1 = stein_control_variate(phi, x_t, eps, 0.7)
    h2, v2 = stein_control_variate(phi, x_t, eps, 0.7, grad_scale=1024.0)
    assert torch.equal(v1, v2) and torch.equal(h1, h2)
    # φ = 1e-8·Σ x with x passed through float16: the backward meets the float16 cast with a
    # gradient of 1e-8, below float16's smallest subnormal (6e-8): zero at S = 1
    tiny = lambda z: z.half().float().flatten(1).sum(1) * 1e-8
    h1, _ = stein_control_variate(tiny, x_t, eps, 1.0)
    h2, _ = stein_control_variate(tiny, x_t, eps, 1.0, grad_scale=2.0**20)
    phi_value = tiny(x_t)[:, None, None, None]
    assert torch.equal(h1, eps * phi_value)  # ∇φ flushed to zero
    torch.testing.assert_close(eps * phi_value - h2, torch.full_like(x_t, 1e-8), rtol=1e-3,
                               atol=0)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="grad_scale"):
            stein_control_variate(phi, x_t, eps, 0.7, grad_scale=bad)
