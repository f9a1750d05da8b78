"""sdlib.decomposition: the law-of-total-variance split of a crossed camera x timestep x noise
design, against a direct reference, a random-effects simulation, and the 2-D toy's exact
answers (issue 11, acceptance 1)."""

import math

import pytest
import torch

from sdlib.decomposition import decompose, efficiency, oracle_coefficient
from sdlib.toy.distill import NoiseDraw, ToyDistillConfig, ToyDistiller
from sdlib.toy.mixture import GaussianMixture, ring_mixture, vp_alpha_sigma
from sdlib.toy.variance_reduction import ToyVRConfig, crossed_draw, gaussian_exact, theta_grads


@pytest.fixture(autouse=True)
def one_thread():
    # tiny tensors: thread start-up dominates on a shared 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _reference(g: torch.Tensor) -> dict[str, float]:
    """Two-way random-effects ANOVA written out term by term (slow reference)."""
    g = g.double().reshape(*g.shape[:3], -1)
    k, t, n, _ = g.shape
    cell = g.mean(2)
    grand = cell.mean((0, 1))
    cam = cell.mean(1)
    ts = cell.mean(0)
    ms_e = sum(float((g[a, b, i] - cell[a, b]).pow(2).sum())
               for a in range(k) for b in range(t) for i in range(n)) / (k * t * (n - 1))
    ms_c = n * t * sum(float((cam[a] - grand).pow(2).sum()) for a in range(k)) / (k - 1)
    ms_t = n * k * sum(float((ts[b] - grand).pow(2).sum()) for b in range(t)) / (t - 1)
    ms_ct = n * sum(float((cell[a, b] - cam[a] - ts[b] + grand).pow(2).sum())
                    for a in range(k) for b in range(t)) / ((k - 1) * (t - 1))
    pairs = [float(cell[a, b] @ cell[c, d]) for a in range(k) for b in range(t)
             for c in range(k) for d in range(t) if a != c and b != d]
    flat = g.reshape(k * t * n, -1)
    return {
        "noise_only": ms_e, "interaction": (ms_ct - ms_e) / n,
        "between_cameras": (ms_c - ms_ct) / (t * n), "between_timesteps": (ms_t - ms_ct) / (k * n),
        "mean_sq_norm": sum(pairs) / len(pairs),
        "pooled": float((flat - flat.mean(0)).pow(2).sum()) / (k * t * n - 1),
    }


def _effects_model(reps: int, k: int, t: int, n: int, d: int, sd: dict, gen) -> torch.Tensor:
    """g = m + a_k + b_j + ab_kj + e_kjn, heavy-tailed noise with cell-dependent scale."""
    m = torch.linspace(-1, 1, d, dtype=torch.float64)
    a = sd["c"] * torch.randn(reps, k, 1, 1, d, generator=gen, dtype=torch.float64)
    b = sd["t"] * torch.randn(reps, 1, t, 1, d, generator=gen, dtype=torch.float64)
    ab = sd["ct"] * torch.randn(reps, k, t, 1, d, generator=gen, dtype=torch.float64)
    scale = torch.rand(reps, k, t, 1, 1, generator=gen, dtype=torch.float64) * 2  # E[s^2] = 4/3
    e = torch.randn(reps, k, t, n, d, generator=gen, dtype=torch.float64).pow(3) / math.sqrt(15)
    return m + a + b + ab + sd["e"] * math.sqrt(3 / 4) * scale * e


def test_matches_reference_and_parts_sum():
    gen = torch.Generator().manual_seed(0)
    g = _effects_model(1, 4, 3, 5, 6, {"c": 1.0, "t": 0.7, "ct": 0.5, "e": 1.0}, gen)[0]
    d = decompose(g, n_boot=50)
    ref = _reference(g)
    for name in ("noise_only", "interaction", "between_cameras", "between_timesteps",
                 "mean_sq_norm"):
        assert math.isclose(getattr(d, name), ref[name], rel_tol=1e-9, abs_tol=1e-12), name
    assert math.isclose(d.pooled_trace_cov, ref["pooled"], rel_tol=1e-9)
    assert d.total == pytest.approx(d.between_cells + d.noise_only, rel=1e-12)
    torch.testing.assert_close(d.mean, g.reshape(-1, 6).mean(0))
    assert d.rel_var == pytest.approx(d.total / d.mean_sq_norm)
    # per t: noise only and between cameras from the t-th slice, written out
    j = 1
    sl = g[:, j]
    noise_j = float((sl - sl.mean(1, keepdim=True)).pow(2).sum()) / (4 * 4)
    cm = sl.mean(1)
    cam_j = float((cm - cm.mean(0)).pow(2).sum()) / 3 - noise_j / 5
    assert float(d.per_t_noise_only[j]) == pytest.approx(noise_j)
    assert float(d.per_t_total[j]) == pytest.approx(noise_j + cam_j)
    assert all(math.isfinite(v) and v > 0 for v in (d.total_se, d.noise_only_se, d.rel_var_se))


def test_unbiased_on_random_effects_and_naive_is_not():
    """Averaged over 600 replicate designs, each part matches its true value (4 SE); the
    uncorrected spread of cell means (positive control) is caught being biased by
    noise/N, as is ||mean||^2."""
    gen = torch.Generator().manual_seed(1)
    k, t, n, dim, reps = 4, 3, 3, 4, 600
    sd = {"c": 0.6, "t": 0.8, "ct": 0.5, "e": 1.5}
    g = _effects_model(reps, k, t, n, dim, sd, gen)
    truth = {"between_cameras": dim * sd["c"] ** 2, "between_timesteps": dim * sd["t"] ** 2,
             "interaction": dim * sd["ct"] ** 2, "noise_only": dim * sd["e"] ** 2,
             "mean_sq_norm": float(torch.linspace(-1, 1, dim).double().pow(2).sum())}
    truth["total"] = sum(v for key, v in truth.items() if key != "mean_sq_norm")
    est = {key: [] for key in truth}
    naive_cells, naive_msq = [], []
    for r in range(reps):
        d = decompose(g[r], n_boot=2)
        for key in est:
            est[key].append(getattr(d, key))
        cells = g[r].mean(2).reshape(k * t, dim)
        naive_cells.append(float((cells - cells.mean(0)).pow(2).sum()) / (k * t - 1))
        naive_msq.append(float(d.mean.pow(2).sum()))
    for key, vals in est.items():
        v = torch.tensor(vals)
        z = (float(v.mean()) - truth[key]) / float(v.std() / math.sqrt(reps))
        assert abs(z) < 4, (key, float(v.mean()), truth[key], z)
    # positive controls: what the corrections remove is visible at this sample size
    v = torch.tensor(naive_cells)
    cells_truth = truth["total"] - truth["noise_only"]
    assert (float(v.mean()) - cells_truth) / float(v.std() / math.sqrt(reps)) > 4
    v = torch.tensor(naive_msq)
    assert (float(v.mean()) - truth["mean_sq_norm"]) / float(v.std() / math.sqrt(reps)) > 4


def _toy_design(prior, theta, cfg, k, t, n, seed):
    gen = torch.Generator().manual_seed(seed)
    draw = crossed_draw(k, t, n, theta.shape[0], cfg, gen, dtype=torch.float64)
    dist = ToyDistiller(prior, ToyDistillConfig(method="sds"), dtype=torch.float64)
    return dist, draw, dist.per_sample_theta_grads(theta, draw)


def test_toy_gaussian_exact_parts():
    """Acceptance (issue 11, 1): on the toy with an exact (Gaussian) score, each part of the
    decomposition, the noise-only part first, matches its closed form within 3 SE."""
    mean, std = torch.tensor([1.0, 0.5], dtype=torch.float64), 0.5
    prior = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None],
                            std**2 * torch.eye(2, dtype=torch.float64)[None])
    theta = torch.tensor([[0.3, -0.2], [1.5, 0.4], [-0.8, 1.0]], dtype=torch.float64)
    cfg = ToyVRConfig(camera_spread=1.0)
    k, t, n = 24, 24, 8
    dist, draw, g = _toy_design(prior, theta, cfg, k, t, n, seed=3)
    # the closed-form pull-back equals the toy's autograd one
    torch.testing.assert_close(theta_grads(dist.grad_x(theta, draw).grad, draw.camera), g)
    d = decompose(g.reshape(k, t, n, -1), n_boot=300, resample="both")
    exact = gaussian_exact(theta, mean, std, cfg)
    assert abs(d.noise_only - exact["noise_only"]) < 3 * d.noise_only_se, (d, exact)
    for name in ("between_cameras", "between_timesteps", "interaction", "total"):
        assert abs(getattr(d, name) - exact[name]) < 3 * getattr(d, name + "_se"), name
    assert d.total == pytest.approx(d.between_cells + d.noise_only, rel=1e-12)
    assert abs(d.pooled_trace_cov - d.total) < 3 * d.total_se
    # per t: the noise-only part at t_j is 2 Kp b(t_j)^2 exactly (2 Kp N-1 dof per t)
    alpha, sigma = vp_alpha_sigma(draw.t.reshape(k, t, n)[0, :, 0])
    b2 = (sigma**2 * alpha**2 * std**2 / (alpha**2 * std**2 + sigma**2)) ** 2
    rel = d.per_t_noise_only / (2 * theta.shape[0] * b2)
    assert float((rel - 1).abs().max()) < 4 * math.sqrt(2 / (2 * 3 * k * (n - 1)))


def test_toy_ring_noise_only_brute_force():
    """Ring mixture (nonlinear score): noise-only part against a brute-force reference of
    200 independent cells x 256 noises, within 3 combined standard errors."""
    prior = ring_mixture(dtype=torch.float64)
    theta = torch.tensor([[1.8, 0.3], [-0.5, 1.2], [0.2, -2.1], [0.0, 0.0]], dtype=torch.float64)
    cfg = ToyVRConfig(camera_spread=0.5)
    k, t, n = 16, 16, 8
    _, _, g = _toy_design(prior, theta, cfg, k, t, n, seed=5)
    d = decompose(g.reshape(k, t, n, -1), n_boot=300, resample="both")
    # brute force: 200 independent cells (own camera and timestep), 256 noises each
    gen = torch.Generator().manual_seed(7)
    t_cells = cfg.t_min + (cfg.t_max - cfg.t_min) * torch.rand(200, generator=gen,
                                                               dtype=torch.float64)
    cam = (2 * torch.rand(200, generator=gen, dtype=torch.float64) - 1) * cfg.camera_spread
    eps = torch.randn(200 * 256, theta.shape[0], 2, generator=gen, dtype=torch.float64)
    draw = NoiseDraw(t=t_cells.repeat_interleave(256), camera=cam.repeat_interleave(256), eps=eps)
    dist = ToyDistiller(prior, ToyDistillConfig(method="sds"), dtype=torch.float64)
    gb = theta_grads(dist.grad_x(theta, draw).grad, draw.camera).reshape(200, 256, -1)
    per_cell = (gb - gb.mean(1, keepdim=True)).pow(2).sum((1, 2)) / 255
    ref, ref_se = float(per_cell.mean()), float(per_cell.std() / math.sqrt(200))
    assert abs(d.noise_only - ref) < 3 * math.hypot(d.noise_only_se, ref_se), (d.noise_only, ref)
    assert d.noise_only_se < 0.2 * d.noise_only  # the check has teeth


def test_oracle_coefficient():
    gen = torch.Generator().manual_seed(2)
    k, t, n, dim = 3, 4, 16, 10
    h = torch.randn(k, t, n, dim, generator=gen, dtype=torch.float64)
    mu_true = torch.rand(k, t, generator=gen, dtype=torch.float64) * 3
    noise = 0.5 * torch.randn(k, t, n, dim, generator=gen, dtype=torch.float64)
    f = mu_true[..., None, None] * h + noise + torch.randn(k, t, 1, dim, generator=gen,
                                                            dtype=torch.float64)
    o = oracle_coefficient(f, h)
    # per cell: least squares of centred f on centred h
    for a in range(k):
        for b in range(t):
            fc = f[a, b] - f[a, b].mean(0)
            hc = h[a, b] - h[a, b].mean(0)
            assert float(o.mu[a, b]) == pytest.approx(float((fc * hc).sum() / hc.pow(2).sum()))
    assert o.noise_only_f == pytest.approx(decompose(f, n_boot=2).noise_only)
    assert (o.mu - mu_true).abs().max() < 0.1
    # residual variance of the true mu is dim * 0.25; in-sample is below the split estimate
    assert o.noise_only_in_sample < o.noise_only_split
    assert o.noise_only_split == pytest.approx(dim * 0.25, rel=0.15)
    assert o.ratio_split < 0.2


def test_efficiency_and_errors():
    sds = efficiency(2.0, seconds_per_step=0.1, samples_per_step=4)
    pair = efficiency(0.5, evaluations=2, seconds_per_step=0.1, samples_per_step=2)
    rel = pair.relative_to(sds)
    assert rel["per_evaluation"] == pytest.approx(0.5)
    assert rel["variance_time"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[K cameras, T timesteps"):
        decompose(torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match="K >= 2"):
        decompose(torch.zeros(1, 3, 2, 5))
    with pytest.raises(ValueError, match="resample"):
        decompose(torch.randn(2, 2, 2, 3), resample="cells")


def test_bootstrap_counts_equal_resampled_design():
    """A bootstrap replicate, computed from counts, equals decomposing the resampled design."""
    from sdlib.decomposition import _parts_from_gram, cell_stats

    gen = torch.Generator().manual_seed(4)
    g = torch.randn(5, 4, 3, 6, generator=gen, dtype=torch.float64)
    kk, jj = torch.tensor([0, 0, 2, 4, 4]), torch.tensor([1, 3, 3, 0])
    direct = decompose(g[kk][:, jj], n_boot=2)
    st = cell_stats(g)
    flat = st.cell_mean.reshape(20, 6)
    gram = (flat @ flat.T).reshape(5, 4, 5, 4)
    w = torch.bincount(kk, minlength=5).double()[None]
    v = torch.bincount(jj, minlength=4).double()[None]
    parts = _parts_from_gram(gram, st.within_ss, 3, w, v)
    for name in ("total", "between_cameras", "between_timesteps", "interaction", "noise_only",
                 "mean_sq_norm"):
        assert float(parts[name][0]) == pytest.approx(getattr(direct, name), rel=1e-9), name


def test_paired_ratio():
    """Estimators on the same draws: the paired bootstrap's ratio SE is far below what
    independent SEs would suggest; mismatched bootstraps are refused."""
    from sdlib.decomposition import paired_ratio

    gen = torch.Generator().manual_seed(5)
    g = _effects_model(1, 6, 4, 8, 5, {"c": 1.0, "t": 1.0, "ct": 0.5, "e": 1.0}, gen)[0]
    h = g + 0.1 * torch.randn(g.shape, generator=gen, dtype=torch.float64)
    a, b = decompose(h, n_boot=200), decompose(g, n_boot=200)
    r, se = paired_ratio(a, b)
    assert r == pytest.approx(a.total / b.total)
    naive = r * math.hypot(a.total_se / a.total, b.total_se / b.total)
    assert se < 0.2 * naive
    with pytest.raises(ValueError, match="same bootstrap"):
        paired_ratio(a, decompose(g, n_boot=200, seed=1))
