"""Variance measurement helpers (sdlib.variance), against hand-computed tiny cases."""

import math

import torch

from sdlib.variance import (
    GradNormEMA,
    WelfordAccumulator,
    as_sample_matrix,
    compare_means,
    mean_sq_norm,
    relative_variance,
    trace_covariance,
    variance_report,
)

# Three 2-D gradients: mean (1, 1); squared deviations 1 + 1 + 4 = ... see each test.
G = torch.tensor([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]])


def test_trace_covariance_hand():
    # deviations from (1, 1): (-1, 0), (1, 0), (0, 0) -> sum of squares 2, divisor N - 1 = 2
    assert float(trace_covariance(G)) == 1.0
    # unbiased ||m||^2 = ||mean||^2 - trace / N = 2 - 1/3 (pairs: <g1,g2> = 1, <g1,g3> = 1,
    # <g2,g3> = 3: mean 5/3)
    assert math.isclose(float(mean_sq_norm(G)), 5 / 3, rel_tol=1e-6)
    assert math.isclose(float(relative_variance(G)), 0.6, rel_tol=1e-6)


def test_sources_agree():
    rows = [g for g in G]
    assert torch.equal(as_sample_matrix(rows), G)
    assert torch.equal(as_sample_matrix([[g[:1], g[1:]] for g in G]), G)
    it = iter(G)
    assert torch.equal(as_sample_matrix(lambda: next(it), n=3), G)


def test_report_and_jackknife_hand():
    r = variance_report(G)
    assert r.n == 3 and r.trace_cov == 1.0 and math.isclose(r.rel_var, 0.6, rel_tol=1e-12)
    # leave-one-out traces: drop g1 -> {2, 1}: var 0.5; drop g2 -> 0.5; drop g3 -> {0, 2}: 2.
    loo = torch.tensor([0.5, 0.5, 2.0])
    se = math.sqrt(2 / 3 * float(((loo - loo.mean()) ** 2).sum()))
    assert math.isclose(r.trace_cov_se, se, rel_tol=1e-9)
    # leave-one-out means: (1.5, 1), (0.5, 1), (1, 1); ||m||^2 = ||mean||^2 - loo / 2
    loo_msq = torch.tensor([3.25, 1.25, 2.0]) - loo / 2
    se_msq = math.sqrt(2 / 3 * float(((loo_msq - loo_msq.mean()) ** 2).sum()))
    assert math.isclose(r.mean_sq_norm_se, se_msq, rel_tol=1e-6)
    loo_rel = loo / loo_msq
    se_rel = math.sqrt(2 / 3 * float(((loo_rel - loo_rel.mean()) ** 2).sum()))
    assert math.isclose(r.rel_var_se, se_rel, rel_tol=1e-6)
    torch.testing.assert_close(r.mean_se, torch.tensor([1 / math.sqrt(3), 0.0]))


def test_jackknife_matches_brute_force():
    g = torch.randn(40, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = variance_report(g)
    loo_t, loo_r = [], []
    for i in range(40):
        sub = torch.cat([g[:i], g[i + 1:]])
        loo_t.append(float(trace_covariance(sub)))
        loo_r.append(float(relative_variance(sub)))
    for value, se in ((loo_t, r.trace_cov_se), (loo_r, r.rel_var_se)):
        v = torch.tensor(value, dtype=torch.float64)
        assert math.isclose(se, math.sqrt(39 / 40 * float(((v - v.mean()) ** 2).sum())),
                            rel_tol=1e-9)


def test_mean_sq_norm_unbiased_zero_mean():
    """Issue 11, item 0: with a zero mean and N = 32, ||m||^2 must read 0 within its standard
    error, not tr Cov / N (and the relative variance must not saturate near N)."""
    g = torch.randn(32, 1000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r = variance_report(g)
    assert abs(r.mean_sq_norm) < 3 * r.mean_sq_norm_se
    # the biased ||mean||^2 sits at tr Cov / N, many standard errors away (positive control)
    biased = float(g.mean(0).pow(2).sum())
    assert abs(biased - r.trace_cov / 32) < 0.2 * r.trace_cov / 32
    assert biased > 8 * r.mean_sq_norm_se
    assert not 20 < r.rel_var < 40


def test_mean_sq_norm_known_mean():
    """Known mean: ||m||^2 = 25 (averaged over 400 designs of N = 32, within 4 SE) and the
    relative variance close to tr Cov / 25, where the biased form reads lower."""
    gen = torch.Generator().manual_seed(4)
    m = torch.zeros(64, dtype=torch.float64)
    m[:2] = torch.tensor([3.0, 4.0])
    g = m + 2 * torch.randn(400, 32, 64, generator=gen, dtype=torch.float64)  # tr Cov = 256
    msq = torch.tensor([variance_report(x).mean_sq_norm for x in g])
    z = (float(msq.mean()) - 25) / float(msq.std() / math.sqrt(400))
    assert abs(z) < 4
    biased = g.mean(1).pow(2).sum(-1)
    assert (float(biased.mean()) - 25) / float(biased.std() / 20) > 4  # +256/32 = 8: caught
    rel = torch.tensor([variance_report(x).rel_var for x in g[:50]])
    assert abs(float(rel.median()) - 256 / 25) < 2.5


def test_welford_matches_batch():
    g = torch.randn(101, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 3
    acc = WelfordAccumulator()
    acc.update(g[:1][0])
    acc.update(g[1:40])
    for row in g[40:60]:
        acc.update([row[:2], row[2:]])
    acc.update(g[60:])
    assert acc.n == 101
    torch.testing.assert_close(acc.mean, g.mean(0))
    torch.testing.assert_close(acc.trace_cov, trace_covariance(g))
    torch.testing.assert_close(acc.rel_var, relative_variance(g))


def test_compare_means():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 16, generator=gen)
    b = torch.randn(2000, 16, generator=gen)
    same = compare_means(a, b)
    assert same.max_abs_z < 4 and same.chi2_p > 0.001 and same.dof == 16
    shifted = compare_means(a, b + 0.5)
    assert shifted.max_abs_z > 8 and shifted.chi2_p < 1e-6


def test_grad_norm_ema():
    ema = GradNormEMA(decay=0.5)
    ema.update(torch.tensor([1.0, 0.0]))
    assert ema.norm == 1.0 and abs(ema.variance) < 1e-12  # one sample: no spread
    ema.update(torch.tensor([-1.0, 0.0]))
    # weights 1/3, 2/3 after bias correction: mean (-1/3, 0), E||g||^2 = 1 -> 1 - 1/9
    assert math.isclose(ema.variance, 8 / 9, rel_tol=1e-9)
