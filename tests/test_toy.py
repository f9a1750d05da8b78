"""The toy world (sdlib.toy): exact mixture scores, renderer, SDS / VSD / SSD estimators."""

import math

import torch

from sdlib.toy.distill import (
    LinearBaseline,
    ToyDistillConfig,
    ToyDistiller,
    distill,
    draw_noise,
    fit_ssd,
    quadratic_features,
    sds_grad,
)
from sdlib.toy.mixture import GaussianMixture, particle_eps_pred, ring_mixture, vp_alpha_sigma
from sdlib.toy.renderer import render_affine, render_particles, rotation
from sdlib.variance import compare_means, variance_report


def _mixture():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64)
    covs = a @ a.transpose(-1, -2) + 0.1 * torch.eye(2, dtype=torch.float64)
    means = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), means, covs)


def test_mixture_score_matches_autograd():
    prior = _mixture()
    gen = torch.Generator().manual_seed(1)
    x_t = torch.randn(64, 2, generator=gen, dtype=torch.float64).requires_grad_(True)
    alpha, sigma = vp_alpha_sigma(torch.rand(64, generator=gen, dtype=torch.float64))
    (auto,) = torch.autograd.grad(prior.log_prob(x_t, alpha, sigma).sum(), x_t)
    torch.testing.assert_close(prior.score(x_t.detach(), alpha, sigma), auto)
    torch.testing.assert_close(prior.eps_pred(x_t.detach(), alpha, sigma), -sigma[:, None] * auto)


def test_noised_mixture_density_by_monte_carlo():
    # p_t(y) = E_x[N(y; alpha x, sigma^2 I)]: check at one point
    prior = _mixture()
    gen = torch.Generator().manual_seed(2)
    x = prior.sample(200_000, gen)
    alpha, sigma = 0.8, 0.6
    y = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    kern = torch.exp(-((y - alpha * x) ** 2).sum(1) / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    assert math.isclose(float(prior.log_prob(y, alpha, sigma).exp()), float(kern.mean()),
                        rel_tol=0.02)


def test_particle_score_is_zero_cov_mixture():
    gen = torch.Generator().manual_seed(3)
    parts = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64)
    mix = GaussianMixture(torch.full((5,), 0.2, dtype=torch.float64), parts,
                          1e-30 * eye.expand(5, 2, 2).clone())
    x_t = torch.randn(10, 2, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(particle_eps_pred(x_t, parts, 0.7, 0.5),
                               mix.eps_pred(x_t, 0.7, 0.5))


def test_renderers():
    cam = torch.tensor([0.0, math.pi / 2])
    theta = torch.tensor([[1.0, 0.0]])
    x = render_particles(theta, cam)
    torch.testing.assert_close(x, torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]))
    torch.testing.assert_close(rotation(cam)[1] @ rotation(-cam)[1], torch.eye(2))
    ident = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.0])
    torch.testing.assert_close(render_affine(ident, theta, cam[:1]), torch.tensor([[[1.5, 0.0]]]))


def test_sds_equals_ssd_phi_one():
    prior = ring_mixture(dtype=torch.float64)
    theta = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = ToyDistillConfig(method="ssd")
    draw = draw_noise(16, 6, cfg, torch.Generator().manual_seed(1), torch.float64)
    ssd = ToyDistiller(prior, cfg, dtype=torch.float64).grad_x(theta, draw)
    sds = ToyDistiller(prior, ToyDistillConfig(method="sds"), dtype=torch.float64).grad_x(
        theta, draw)
    torch.testing.assert_close(ssd.grad, sds.grad, atol=0, rtol=0)
    torch.testing.assert_close(sds.grad, sds_grad(sds.eps_pred, draw.eps, sds.weight))


def test_ssd_unbiased_and_lower_variance():
    prior = ring_mixture(dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    theta = 0.5 * torch.randn(8, 2, generator=gen, dtype=torch.float64)
    sds = ToyDistiller(prior, ToyDistillConfig(method="sds"), dtype=torch.float64)
    ssd = ToyDistiller(prior, ToyDistillConfig(method="ssd"),
                       LinearBaseline(quadratic_features, 8), dtype=torch.float64)
    fit_ssd(ssd, theta, 150, 16, gen)
    r_sds = variance_report(sds.per_sample_theta_grads(theta, draw_noise(
        4000, 8, sds.config, gen, torch.float64)))
    r_ssd = variance_report(ssd.per_sample_theta_grads(theta, draw_noise(
        4000, 8, ssd.config, gen, torch.float64)))
    assert compare_means(r_sds, r_ssd).chi2_p > 1e-3
    assert r_ssd.trace_cov < 0.5 * r_sds.trace_cov


def test_distill_runs_all_methods():
    prior = ring_mixture(dtype=torch.float64)
    theta0 = 0.3 * torch.randn(8, 2, generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64)
    for method in ("sds", "vsd_exact", "vsd_learned", "ssd"):
        cfg = ToyDistillConfig(method=method, eps_net_warmup=5)
        run = distill(theta0, prior, cfg, steps=5, batch=2, snapshot_every=5)
        assert len(run.thetas) == 2 and torch.isfinite(run.thetas[-1]).all()
        assert len(run.grad_var_ema) == 5
