"""The 2-D toy's variance reductions (issue 12): each unbiased against SDS (4 SE, >= 256
samples, with a positive control), and their variances against exact Gaussian answers."""

import pytest
import torch

from sdlib.control_variates import stein_control_variate
from sdlib.decomposition import decompose
from sdlib.toy.mixture import GaussianMixture, ring_mixture, vp_alpha_sigma
from sdlib.toy.renderer import render_particles
from sdlib.toy.variance_reduction import (
    ToyCellTable,
    ToyEstimator,
    ToyVRConfig,
    crossed_draw,
    draw_batch,
    gaussian_cell_means,
    gaussian_cell_remainder,
    gaussian_exact,
    gaussian_mu_star,
    gaussian_noise_only_with,
    stratified_uniform,
    theta_grads,
)
from sdlib.variance import compare_means, variance_report

DT = torch.float64
CFG = ToyVRConfig(camera_spread=0.5)
THETA = torch.tensor([[1.8, 0.3], [-0.5, 1.2], [0.2, -2.1], [0.0, 0.0]], dtype=DT)
MEAN, STD = torch.tensor([1.0, 0.5], dtype=DT), 0.5


@pytest.fixture(autouse=True)
def one_thread():
    # tiny tensors: thread start-up dominates on a shared 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gaussian() -> GaussianMixture:
    cov = STD**2 * torch.eye(2, dtype=DT)[None]
    return GaussianMixture(torch.ones(1, dtype=DT), MEAN[None], cov)


def _sds_samples(prior, n, gen):
    est = ToyEstimator(prior, "sds", CFG, dtype=DT)
    d = draw_batch(n, THETA.shape[0], CFG, gen, dtype=DT)
    return theta_grads(est.grad_x(THETA, d), d.camera)


def _online(est, steps, batch, gen, record=True):
    out = []
    for _ in range(steps):
        d = draw_batch(batch, THETA.shape[0], CFG, gen, dtype=DT)
        g = theta_grads(est.grad_x(THETA, d), d.camera)  # used before the update
        est.update()
        out.append(g)
    return torch.cat(out) if record else None


@pytest.mark.parametrize("kind", ["mu_t", "two_coef", "learned"])
def test_learned_estimators_unbiased(kind):
    """Online-learned mu(t), two coefficients and a learned phi network: 256 samples taken
    while learning (each with the state before its own update) have SDS's mean, and less
    variance than SDS."""
    prior = ring_mixture(dtype=DT)
    gen = torch.Generator().manual_seed(1)
    sds = _sds_samples(prior, 1024, gen)
    est = ToyEstimator(prior, kind, CFG, dtype=DT)
    _online(est, 100, 8, gen, record=False)  # warm up: the estimator is no longer SDS
    g = _online(est, 32, 8, gen)
    assert g.shape[0] >= 256
    cmp = compare_means(sds, g)
    assert cmp.max_abs_z < 4, cmp
    assert variance_report(g).trace_cov < 0.6 * variance_report(sds).trace_cov


def test_positive_control_caught():
    """The same comparison, at the same sample size, catches a biased control variate: the
    baseline phi = 1 + x_t,1 with Stein's -sigma grad phi term dropped (h = eps phi), while
    the correct h = eps phi - sigma grad phi passes."""
    prior = ring_mixture(dtype=DT)
    gen = torch.Generator().manual_seed(2)
    sds = _sds_samples(prior, 1024, gen)
    est = ToyEstimator(prior, "sds", CFG, dtype=DT)
    d = draw_batch(256, THETA.shape[0], CFG, gen, dtype=DT)
    f, h, w = est.control_variates(THETA, d)
    alpha, sigma = vp_alpha_sigma(d.t)
    x_t = alpha[:, None, None] * render_particles(THETA, d.camera) + sigma[:, None, None] * d.eps
    k = THETA.shape[0]
    good, _ = stein_control_variate(lambda z: 1 + z[:, 0], x_t.reshape(-1, 2),
                                    d.eps.reshape(-1, 2), sigma.repeat_interleave(k))
    biased = d.eps * (1 + x_t[..., :1])
    assert compare_means(sds, theta_grads(f - w * good.reshape(f.shape), d.camera)).max_abs_z < 4
    bad = compare_means(sds, theta_grads(f - w * biased, d.camera))
    assert bad.max_abs_z > 4


def test_antithetic_and_stratified_unbiased():
    """Antithetic pair means (256 pairs) and batch means of stratified t and cameras (256
    batches of 8) have SDS's mean; the antithetic pair has less noise per evaluation."""
    prior = ring_mixture(dtype=DT)
    gen = torch.Generator().manual_seed(3)
    est = ToyEstimator(prior, "sds", CFG, dtype=DT)
    d = draw_batch(256, THETA.shape[0], CFG, gen, antithetic=True, dtype=DT)
    g = theta_grads(est.grad_x(THETA, d), d.camera)
    pairs = 0.5 * (g[:256] + g[256:])
    sds = _sds_samples(prior, 2048, gen)
    assert compare_means(sds, pairs).max_abs_z < 4
    assert 2 * variance_report(pairs).trace_cov < 0.6 * variance_report(sds).trace_cov
    strat = []
    for _ in range(256):
        d = draw_batch(8, THETA.shape[0], CFG, gen, stratify_t=True, stratify_camera=True,
                       dtype=DT)
        strat.append(theta_grads(est.grad_x(THETA, d), d.camera).mean(0))
    strat = torch.stack(strat)
    iid = sds.reshape(256, 8, -1).mean(1)
    assert compare_means(iid, strat).max_abs_z < 4
    # positive control: stratifying t over half the range is caught
    half = ToyVRConfig(t_min=0.02, t_max=0.5, camera_spread=0.5)
    wrong = []
    for _ in range(256):
        d = draw_batch(8, THETA.shape[0], half, gen, stratify_t=True, dtype=DT)
        wrong.append(theta_grads(est.grad_x(THETA, d), d.camera).mean(0))
    assert compare_means(iid, torch.stack(wrong)).max_abs_z > 4


def test_stratified_uniform_marginal():
    gen = torch.Generator().manual_seed(0)
    u = torch.stack([stratified_uniform(4, 0.0, 1.0, gen) for _ in range(4000)])
    assert sorted((u * 4).floor()[0].tolist()) == [0.0, 1.0, 2.0, 3.0]  # one per stratum
    first = u[:, 0]  # any one position is U[0, 1): mean 1/2, variance 1/12
    assert abs(float(first.mean()) - 0.5) < 4 * (1 / 12 / 4000) ** 0.5
    assert abs(float(first.var()) - 1 / 12) < 0.01


def test_gaussian_exact_answers():
    """Gaussian prior (linear exact score): mu(t) learns sigma^2 / v and the noise-only part it
    leaves matches the exact value for the learned table (3 SE); antithetic pairs leave no
    noise; stratified t's batch variance matches its exact value (3 SE)."""
    prior = _gaussian()
    gen = torch.Generator().manual_seed(4)
    exact = gaussian_exact(THETA, MEAN, STD, CFG, strata=8)
    est = ToyEstimator(prior, "mu_t", CFG, dtype=DT)
    _online(est, 300, 16, gen, record=False)
    knots = est.table.knots
    err = (est.table.mu[0] - gaussian_mu_star(knots, STD))[2:]  # omega ~ 0 at the first knots
    assert float(err.abs().max()) < 0.1, est.table.mu
    k, t, n = 12, 32, 8
    d = crossed_draw(k, t, n, THETA.shape[0], CFG, gen, dtype=DT)
    dec = decompose(theta_grads(est.grad_x(THETA, d), d.camera).reshape(k, t, n, -1),
                    n_boot=200, resample="both")
    want = gaussian_noise_only_with(est.table, THETA.shape[0], STD, CFG)
    assert abs(dec.noise_only - want) < 3 * dec.noise_only_se, (dec.noise_only, want)
    assert want < 0.05 * exact["noise_only"]
    # antithetic: the pair mean of a linear score has no noise at all
    sds = ToyEstimator(prior, "sds", CFG, dtype=DT)
    d = crossed_draw(4, 4, 8, THETA.shape[0], CFG, gen, dtype=DT, antithetic=True)
    g = theta_grads(sds.grad_x(THETA, d), d.camera).reshape(4, 4, 2, 4, -1).mean(2)
    assert decompose(g, n_boot=2).noise_only < 1e-20
    # stratified t (iid cameras and noises), batches of 8
    d = draw_batch(8 * 3000, THETA.shape[0], CFG, gen, dtype=DT)
    d = type(d)(t=torch.cat([stratified_uniform(8, CFG.t_min, CFG.t_max, gen, DT)
                             for _ in range(3000)]), camera=d.camera, eps=d.eps)
    means = theta_grads(sds.grad_x(THETA, d), d.camera).reshape(3000, 8, -1).mean(1)
    r = variance_report(means)
    assert abs(r.trace_cov - exact["stratified_batch_var"]) < 3 * r.trace_cov_se
    assert exact["stratified_batch_var"] < 0.5 * exact["iid_batch_var"]


def test_cell_table_exact_answers_and_unbiasedness():
    """Cells: the 1 × 1 table's remainder is SDS's total; with the oracle table (exact cell
    means) the measured variance per evaluation matches the exact remainder (3 SE), alone and
    with antithetic pairs; a learned table used before its update keeps SDS's mean (4 SE on
    the same draws), and dropping the Σ p b term is caught."""
    exact = gaussian_exact(THETA, MEAN, STD, CFG)
    one = gaussian_cell_remainder(THETA, MEAN, STD, CFG, 1, 1)
    assert one["total"] == pytest.approx(exact["total"], rel=1e-9)
    prior, gen = _gaussian(), torch.Generator().manual_seed(8)
    sds = ToyEstimator(prior, "sds", CFG, dtype=DT)
    kp2 = 2 * THETA.shape[0]
    rem = gaussian_cell_remainder(THETA, MEAN, STD, CFG, 4, 8)
    assert rem["total"] < 0.25 * exact["total"]
    cells = ToyCellTable(4, 8, kp2, CFG)
    cells.table.copy_(gaussian_cell_means(THETA, MEAN, STD, CFG, 4, 8))
    d = draw_batch(6000, THETA.shape[0], CFG, gen, dtype=DT)
    g = theta_grads(sds.grad_x(THETA, d), d.camera)
    r = variance_report(cells.correct(g, cells.cells(d.camera, d.t)))
    assert abs(r.trace_cov - rem["total"]) < 3 * r.trace_cov_se, (r.trace_cov, rem)
    d = draw_batch(3000, THETA.shape[0], CFG, gen, antithetic=True, dtype=DT)
    g = cells.correct(theta_grads(sds.grad_x(THETA, d), d.camera), cells.cells(d.camera, d.t))
    r = variance_report(0.5 * (g[:3000] + g[3000:]))  # pair means (rows i and m + i)
    assert abs(2 * r.trace_cov - rem["antithetic"]) < 3 * 2 * r.trace_cov_se
    # learned online from a zero table, used before each update: SDS's mean
    learned = ToyCellTable(4, 8, kp2, CFG, decay=0.2)
    diffs, wrong = [], []
    for _ in range(64):
        d = draw_batch(8, THETA.shape[0], CFG, gen, dtype=DT)
        g = theta_grads(sds.grad_x(THETA, d), d.camera)
        c = learned.cells(d.camera, d.t)
        diffs.append((learned.correct(g, c) - g).mean(0))
        wrong.append((g - learned.table[c]).mean(0) - g.mean(0))  # without Σ p b
        learned.update(g, c)
    assert compare_means(torch.stack(diffs), torch.zeros_like(torch.stack(diffs))).max_abs_z < 4
    assert compare_means(torch.stack(wrong), torch.zeros_like(torch.stack(wrong))).max_abs_z > 4
