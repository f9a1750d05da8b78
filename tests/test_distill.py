"""SDS / SSD estimators: exact identities, zero mean of the Stein term through a depth
baseline, hand-computed Pearson, and the batched path against a per-sample loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sdlib.control_variates import (
    CoefficientConfig,
    stein_control_variate,
    stein_control_variate_printed,
)
from sdlib.distill import (
    SSD,
    SSDConfig,
    TimestepConfig,
    add_noise,
    alpha_sigma,
    constant_baseline,
    depth_baseline,
    masked_pearson,
    pullback_loss,
    sample_timesteps,
    sds_gradient,
    ssd_gradient,
    t_range_at,
    weighting,
)


def _schedule() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def test_ssd_with_constant_baseline_and_unit_mu_is_sds_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    abar = _schedule()
    x = torch.randn(3, 4, 8, 8, generator=g)
    eps = torch.randn(3, 4, 8, 8, generator=g)
    eps_pred = torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([20, 500, 979])
    x_t = add_noise(x, eps, abar, t)
    _, sigma = alpha_sigma(abar, t)
    w = weighting(TimestepConfig(), abar, t)
    ssd = SSD(SSDConfig(baseline="constant"), event_shape=(4, 8, 8))
    grad_ssd, _ = ssd.gradient(eps_pred, eps, x_t, sigma, w, constant_baseline)
    assert torch.equal(grad_ssd, sds_gradient(eps_pred, eps, w))


class _TinyDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.SiLU(),
                                 nn.Upsample(scale_factor=2), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z))


class _TinyDepth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.net(img))[:, 0]


def _depth_setup(n: int, seed: int = 0):
    torch.manual_seed(seed)
    decoder, depth_net = _TinyDecoder(), _TinyDepth()
    for p in [*decoder.parameters(), *depth_net.parameters()]:
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 4, 4, 4, generator=g).expand(n, -1, -1, -1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8), indexing="ij")
    radius = (xx**2 + yy**2).sqrt()
    opacity = (radius < 0.8).float().expand(n, -1, -1)
    depth = (1.5 + 0.3 * radius).expand(n, -1, -1)
    phi = depth_baseline(decoder, depth_net, depth, opacity)
    eps = torch.randn(n, 4, 4, 4, generator=g)
    return x, eps, phi


def test_depth_baseline_stein_term_is_zero_mean_and_printed_form_is_not() -> None:
    """Aggregate z-test over all 64 coordinates: sum z² ~ χ²_64 under zero mean."""
    n = 6000
    x, eps, phi = _depth_setup(n)
    alpha, sigma = 0.6, 0.8
    x_t = alpha * x + sigma * eps
    h, phi_value = stein_control_variate(phi, x_t, eps, sigma)
    assert torch.isfinite(h).all() and (phi_value.std() > 0)
    flat = h.flatten(1).double()
    z = flat.mean(0) / (flat.std(0) / n**0.5)
    d = z.numel()
    chi2 = float((z**2).sum())
    assert abs(chi2 - d) < 5 * (2 * d) ** 0.5, f"Stein term not zero-mean: chi2={chi2:.1f}, d={d}"
    # the project page's printed form eps*phi + grad(phi): mean (sigma + 1) E[grad phi] != 0
    printed, _ = stein_control_variate_printed(phi, x_t, eps)
    printed = printed.flatten(1).double()
    z_p = printed.mean(0) / (printed.std(0) / n**0.5)
    assert float((z_p**2).sum()) > d + 10 * (2 * d) ** 0.5


def test_batched_stein_term_matches_per_sample_loop() -> None:
    x, eps, phi = _depth_setup(5, seed=1)
    sigma = torch.tensor([0.3, 0.5, 0.7, 0.9, 0.99])
    alpha = (1 - sigma**2).sqrt()
    x_t = alpha.reshape(-1, 1, 1, 1) * x + sigma.reshape(-1, 1, 1, 1) * eps
    h, _ = stein_control_variate(phi, x_t, eps, sigma)
    for i in range(5):  # the paper's formula, one sample at a time
        xi = x_t[i : i + 1].clone().requires_grad_(True)
        value = phi(xi)[0]
        (grad,) = torch.autograd.grad(value, xi)
        ref = eps[i] * value.detach() - sigma[i] * grad[0]
        torch.testing.assert_close(h[i], ref, rtol=1e-5, atol=1e-6)


def test_masked_pearson_hand_computed() -> None:
    a = torch.tensor([[[1.0, 2.0], [3.0, 100.0]]])
    mask = torch.tensor([[[True, True], [True, False]]])
    # over the three masked pixels: a = (1, 2, 3)
    assert masked_pearson(a, torch.tensor([[[2.0, 4.0], [6.0, -7.0]]]), mask).item() == (
        pytest.approx(1.0, abs=1e-6)
    )
    assert masked_pearson(a, torch.tensor([[[3.0, 2.0], [1.0, 5.0]]]), mask).item() == (
        pytest.approx(-1.0, abs=1e-6)
    )
    # b = (1, 3, 2): cov = (-1)(-1) + 0 + (1)(0) = 1, var_a = 2, var_b = 2 -> 0.5
    assert masked_pearson(a, torch.tensor([[[1.0, 3.0], [2.0, 0.0]]]), mask).item() == (
        pytest.approx(0.5, abs=1e-6)
    )
    one_pixel = torch.tensor([[[True, False], [False, False]]])
    assert masked_pearson(a, a, one_pixel).item() == 0.0


def test_mu_is_used_before_it_is_updated() -> None:
    torch.manual_seed(0)
    ssd = SSD(SSDConfig(baseline="constant",
                        coefficient=CoefficientConfig(reduce="channel", lr=0.1)), (4, 2, 2))
    eps = torch.randn(8, 4, 2, 2)
    eps_pred = 0.5 * eps + 0.1 * torch.randn(8, 4, 2, 2)
    w = torch.ones(8)
    grad, info = ssd.gradient(eps_pred, eps, eps, torch.ones(8), w, constant_baseline)
    torch.testing.assert_close(grad, ssd_gradient(eps_pred, eps, 1.0, w))
    assert info["mu_mean"].item() == 1.0
    assert not torch.allclose(ssd.mu, torch.ones_like(ssd.mu))  # learned after the step
    for _ in range(300):
        ssd.gradient(eps_pred, eps, eps, torch.ones(8), w, constant_baseline)
    closed = (eps_pred * eps).sum(dim=(0, 2, 3)) / (eps * eps).sum(dim=(0, 2, 3))
    torch.testing.assert_close(ssd.mu.flatten(), closed, atol=2e-3, rtol=0)


def test_pullback_loss_gradient_is_grad_and_nan_is_refused() -> None:
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    grad = torch.randn(2, 4, 3, 3)
    pullback_loss(x, grad).backward()
    torch.testing.assert_close(x.grad, grad)
    grad[0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite"):
        pullback_loss(x, grad)


def test_timesteps_range_and_annealing() -> None:
    cfg = TimestepConfig(t_min=0.02, t_max=0.98, t_max_end=0.5, anneal_start=5000,
                         anneal_end=5001)
    assert t_range_at(cfg, 0) == (0.02, 0.98)
    assert t_range_at(cfg, 6000) == (0.02, 0.5)
    g = torch.Generator().manual_seed(0)
    t = sample_timesteps(cfg, 0, 10000, 1000, generator=g)
    assert int(t.min()) == 20 and int(t.max()) == 980
    t = sample_timesteps(cfg, 9000, 10000, 1000, generator=g)
    assert int(t.max()) == 500
    with pytest.raises(ValueError, match="t_min"):
        TimestepConfig(t_min=0.5, t_max=0.4)
    with pytest.raises(ValueError, match="weighting"):
        TimestepConfig(weighting="snr")  # type: ignore[arg-type]


def test_ssd_config_rejects_unknown_decoder():
    from sdlib.distill.ssd import SSDConfig

    with pytest.raises(ValueError, match="decoder"):
        SSDConfig(decoder="taesd")  # type: ignore[arg-type]
