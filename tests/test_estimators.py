"""Issue 12's estimators on the CPU pipeline (tiny random priors, a tiny NeRF, a fixed θ):
each is unbiased — its mean gradient equals SDS's within 4 standard errors over ≥ 256 samples —
and positive controls show the same tests catch a bias.

* **Paired** estimators (μ(t) on SDS's ε, the two-coefficient depth baseline, the learned
  baseline network) are evaluated on the very draws SDS sees: the per-draw difference
  ``ω(ε − control)`` must have mean zero. They learn online while measured (used before their
  update, as in training), which must not bias them.
* **Sampling designs** (antithetic pairs, stratified t and azimuth) change the draws, so their
  batch-mean θ-gradients are compared with independent i.i.d. SDS batches.

Statistic: scalar projections of the mean difference (on SDS's mean direction, on random
directions, and a split-sample direction), each with its own standard error, as in
``tests/test_unbiased_pipeline.py``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from sdlib.control_variates import BinnedCoefficient, BinnedCoefficientConfig
from sdlib.distill import SDS, SSD, Estimate, distillation_gradient
from sdlib.distill.common import TimestepConfig
from sdlib.distill.ssd import SSDConfig
from sdlib.gradient_variance import _sampling, batch_variance, paired_gradients
from sdlib.nerf.field import FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.train import Trainer, shapezoo_config

PROMPT = "a red ball"


@pytest.fixture(scope="module")
def trainer(tiny_prior_folders):
    root = tiny_prior_folders
    cfg = shapezoo_config(
        PROMPT, "sds", device="cpu", batch_size=8, render_size=16, eval_every=0,
        checkpoint_every=0, turntable_frames=0, mesh_resolution=0,
        prior=str(root / "sd"), depth=str(root / "dpt"),
        nerf=FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=8, base_resolution=4)),
        render=RenderConfig(n_samples=12, compute_normals=False),
    )
    tr = Trainer(cfg)
    from sdlib.priors import DepthPrior

    tr.priors.depth = DepthPrior(model=str(root / "dpt"), device="cpu")
    for _ in range(3):  # move θ off its initialisation so the field has structure
        tr.step()
    return tr


def _ssd(trainer, **changes) -> SSD:
    return SSD.build(replace(trainer.config, ssd=SSDConfig(**changes)), trainer.priors)


def _z(projected: torch.Tensor) -> float:
    return float(projected.mean() / (projected.std() / projected.shape[0] ** 0.5))


def _max_abs_z(d: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest |z| of ``d [N, D]``'s mean over projections: 8 random directions on all of
    ``d``; and, on the second half of ``d``, the first half's mean reference gradient
    (``reference [N, D]``) and the first half's mean difference (a split-sample direction). A
    direction is never estimated from the samples it tests: the SDS mean of the same draws
    contains their ``−ω ε`` and would bias the projection."""
    gen = torch.Generator().manual_seed(11)
    d, reference = d.double(), reference.double()
    zs = [_z(d @ (u / u.norm())) for u in
          (torch.randn(d.shape[1], generator=gen, dtype=d.dtype) for _ in range(8))]
    half = d.shape[0] // 2
    for u in (reference[:half].mean(0), d[:half].mean(0)):
        zs.append(_z(d[half:] @ (u / u.norm())))
    return max(abs(z) for z in zs)


def _paired_differences(trainer, estimator, n_batches: int = 32) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """Per-draw ``[N, D]`` differences (estimator − SDS) and SDS gradients, latent space,
    with the estimator learning online (used before its update)."""
    diffs, sds = [], []
    with _sampling(trainer):
        trainer.generator.manual_seed(5)
        for _ in range(n_batches):
            with torch.no_grad():
                cams, out, latents = trainer.sample_views()
            draw = trainer.make_draw(cams, out, latents)
            est = estimator.control(draw)
            g = distillation_gradient(draw, est.control)
            g_sds = distillation_gradient(draw, draw.eps)
            estimator.update(draw, est)
            diffs.append((g - g_sds).flatten(1))
            sds.append(g_sds.flatten(1))
    return torch.cat(diffs), torch.cat(sds)


@pytest.mark.parametrize("kind", ["mu_t", "two_coefficients", "learned"])
def test_paired_estimators_are_unbiased(trainer, kind) -> None:
    binned = BinnedCoefficientConfig(n_bins=4, min_count=2.0)
    est = {
        "mu_t": lambda: _ssd(trainer, baseline="constant", coefficient_update="binned",
                             binned=binned),
        # ε and h with their own μ(t); h from a varying φ (the tiny random DPT's depth baseline is
        # nearly constant, spread 7e-5, which would make h a multiple of ε and test nothing)
        "two_coefficients": lambda: _ssd(trainer, baseline="learned", coefficient_update="binned",
                                         with_constant=True, binned=binned),
        "learned": lambda: _ssd(trainer, baseline="learned", coefficient_update="binned",
                                binned=binned),
    }[kind]()
    if kind != "mu_t":  # a baseline that varies with x_t, t and c (it starts at φ ≡ 1)
        with torch.no_grad():
            est.network.head.weight.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(4))
    if kind != "mu_t":  # the φ-dependent part is active: h is not a multiple of ε
        with _sampling(trainer):
            trainer.generator.manual_seed(6)
            with torch.no_grad():
                views = trainer.sample_views()
            draw = trainer.make_draw(*views)
            hs, phi = est.control_variates(draw)
        h = hs[-1].detach()
        stein_part = (h - phi.detach()[:, None, None, None] * draw.eps).norm() / h.norm()
        print(f"{kind}: φ spread {float(phi.std()):.3g}, ‖σ∇φ‖/‖h‖ {float(stein_part):.3g}")
        assert float(phi.std()) > 1e-3 and float(stein_part) > 1e-3
    d, sds = _paired_differences(trainer, est)
    assert d.shape[0] >= 256
    assert float(d.abs().max()) > 1e-4, "the estimator must differ from SDS"
    z = _max_abs_z(d, sds)
    print(f"unbiased {kind}: N={d.shape[0]} max|z|={z:.2f} ‖d‖={float(d.norm()):.4g}")
    assert z < 4.0


class _PrintedLinear:
    """Positive control: the project page's printed form ``ε φ + ∇φ`` with ``φ = ⟨v, x_t⟩``
    (``∇φ = v``): its mean exceeds SDS's by ``ω (1 + σ) v``."""

    def __init__(self, v: torch.Tensor) -> None:
        self.v = v

    def control(self, draw) -> Estimate:
        phi = draw.x_t.flatten(1) @ self.v.flatten()
        return Estimate(control=draw.eps * phi[:, None, None, None] + self.v)

    def update(self, draw, estimate) -> dict:
        return {}


def test_paired_positive_control_is_caught(trainer) -> None:
    shape = trainer.priors.latent_shape
    v = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    d, sds = _paired_differences(trainer, _PrintedLinear(v / v.norm()))
    z = _max_abs_z(d, sds)
    print(f"positive control (printed form): max|z|={z:.2f}")
    assert z > 4.0


def _unpaired_z(trainer, design: dict, n_batches: int = 64) -> float:
    """max |z| of (design's batch-mean θ-gradient − i.i.d. SDS's), independent batches."""
    res = batch_variance(trainer, {"sds": (SDS(), {}), "design": (SDS(), design)},
                         n_batches=n_batches, batch_size=4, sketch_dim=None, seed=3)
    a, b = res["design"]["samples"].double(), res["sds"]["samples"].double()
    # independent batches: difference of two means, each with its own error
    gen = torch.Generator().manual_seed(12)
    dirs = [b.mean(0)] + [torch.randn(a.shape[1], generator=gen, dtype=a.dtype)
                          for _ in range(8)]
    zs = []
    for u in dirs:
        u = u / u.norm()
        pa, pb = a @ u, b @ u
        se = (pa.var() / len(pa) + pb.var() / len(pb)).sqrt()
        zs.append(float((pa.mean() - pb.mean()) / se))
    return max(abs(z) for z in zs)


@pytest.mark.parametrize("design", [{"antithetic": True}, {"stratified": True},
                                    {"antithetic": True, "stratified": True}],
                         ids=["antithetic", "stratified", "both"])
def test_sampling_designs_are_unbiased(trainer, design) -> None:
    z = _unpaired_z(trainer, design)  # 64 batches × 4 draws = 256 samples each
    print(f"unbiased design {design}: max|z|={z:.2f}")
    assert z < 4.0


def test_sampling_positive_control_is_caught(trainer) -> None:
    # stratified over the wrong range: only the lower quarter of [t_min, t_max]
    wrong = TimestepConfig(t_min=0.02, t_max=0.26)
    z = _unpaired_z(trainer, {"stratified": True, "timesteps": wrong})
    print(f"positive control (stratified over the wrong range): max|z|={z:.2f}")
    assert z > 4.0


def test_antithetic_pairs_share_render_and_t_with_opposite_noise(trainer) -> None:
    with _sampling(trainer, antithetic=True, batch_size=4):
        with torch.no_grad():
            cams, out, latents = trainer.sample_views()
        draw = trainer.make_draw(cams, out, latents)
    torch.testing.assert_close(draw.eps[0::2], -draw.eps[1::2])
    assert torch.equal(draw.t[0::2], draw.t[1::2])
    assert torch.equal(draw.x[0::2], draw.x[1::2])
    # SDS inside a pair: the ε terms cancel, leaving ω (ε̂₊ + ε̂₋)
    g = distillation_gradient(draw, draw.eps)
    w = draw.weight[0::2, None, None, None]
    torch.testing.assert_close(g[0::2] + g[1::2], w * (draw.eps_pred[0::2] + draw.eps_pred[1::2]))


def test_binned_coefficient_learns_the_per_t_optimum() -> None:
    """f = a(t) h + noise with a(t) = 0.3 below t = 500 and 2.5 above: μ(t) recovers both."""
    gen = torch.Generator().manual_seed(0)
    coef = BinnedCoefficient(BinnedCoefficientConfig(n_bins=10, reduce="scalar", decay=0.99),
                             (1.0,), channels=2, num_train_timesteps=1000)
    for _ in range(200):
        t = torch.randint(0, 1000, (16,), generator=gen)
        h = torch.randn(16, 2, 3, 3, generator=gen)
        a = torch.where(t < 500, 0.3, 2.5)[:, None, None, None]
        f = a * h + 0.1 * torch.randn(h.shape, generator=gen)
        coef.update(t, f, h[None])
    mu = coef.mu(torch.tensor([50, 950]))[:, 0, 0]  # bin centres, far from t = 500
    torch.testing.assert_close(mu, torch.tensor([0.3, 2.5]), atol=0.05, rtol=0)


def test_paired_decomposition_parts_sum_to_total(trainer) -> None:
    from sdlib.decomposition import decompose

    ests = {"sds": SDS()}
    out = paired_gradients(trainer, ests, n_cameras=2, n_timesteps=2, n_noises=3,
                           sketch_dim=None)
    assert out["theta"]["sds"].shape[:3] == (2, 2, 3)
    for space in ("theta", "latent"):
        d = decompose(out[space]["sds"], n_boot=20)
        parts = d.between_cameras + d.between_timesteps + d.interaction + d.noise_only
        assert abs(parts - d.total) <= 0.01 * abs(d.total)
        assert d.noise_only > 0



def test_paired_gradients_render_normals_for_the_normal_baseline(tiny_prior_folders) -> None:
    """At an SDS trainer (whose own renders carry no normals) SSD's normal baseline still gets
    rendered normals in the paired design; without any, it refuses instead of becoming SDS
    (zero normals made φ ≡ 1)."""
    root = tiny_prior_folders
    cfg = shapezoo_config(
        PROMPT, "sds", device="cpu", batch_size=1, render_size=16, eval_every=0,
        checkpoint_every=0, turntable_frames=0, mesh_resolution=0,
        prior=str(root / "sd"), depth=str(root / "dpt"),
        nerf=FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=8, base_resolution=4)),
        render=RenderConfig(n_samples=12))
    tr = Trainer(cfg)
    from sdlib.priors import DepthPrior

    tr.priors.depth = DepthPrior(model=str(root / "dpt"), device="cpu")
    tr.step()
    assert tr.render(tr.sample_views(1)[0]).normals is None  # SDS renders no normals itself
    ests = {"sds": SDS(), "normal": _ssd(tr, baseline="normal")}
    out = paired_gradients(tr, ests, n_cameras=2, n_timesteps=2, n_noises=2, sketch_dim=None)
    diff = (out["latent"]["normal"] - out["latent"]["sds"]).abs().max()
    assert diff > 1e-6, "the normal baseline reduced to SDS: no rendered normals reached it"
    tr_off = Trainer(replace(cfg, render=RenderConfig(n_samples=12, compute_normals=False)))
    tr_off.priors.depth = tr.priors.depth
    with pytest.raises(ValueError, match="needs rendered normals"):
        paired_gradients(tr_off, {"normal": _ssd(tr_off, baseline="normal")}, n_cameras=2,
                         n_timesteps=2, n_noises=2, sketch_dim=None)


def test_decomposed_variance_ratios_to_its_reference(trainer) -> None:
    from sdlib.gradient_variance import decomposed_variance

    with pytest.raises(ValueError, match="reference 'SDS' is not among"):
        decomposed_variance(trainer, {"sds": SDS()}, "SDS")
    out = decomposed_variance(trainer, {"sds": SDS(), "mu": _ssd(trainer, baseline="constant")},
                              "sds", n_cameras=2, n_timesteps=2, n_noises=2)
    assert out["sds"]["total_ratio"][0] == 1.0 and out["sds"]["noise_only_ratio"][0] == 1.0
    parts = sum(out["mu"][k] for k in ("noise_only", "between_cameras", "between_timesteps",
                                       "interaction"))
    assert abs(parts - out["mu"]["total"]) <= 1e-6 * abs(out["mu"]["total"])
