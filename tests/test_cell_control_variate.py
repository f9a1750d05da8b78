"""The control variate across (camera, t) cells (sdlib.cell_control_variate).

* The algebra on a synthetic problem: per-sample gradients ``m_c + noise`` in cells drawn with
  known probabilities; the corrected mean is unbiased whatever the table holds, an oracle table
  leaves only the within-cell variance, and dropping the ``Σ p_j b_j`` term is caught.
* The pipeline (tiny priors, a tiny NeRF, CPU): two trainers with the same seed draw the same
  batches; the cell-corrected θ-gradient minus the plain one, ``−mean_k b_{c_k} + Σ_j p_j b_j``
  for a random table, has mean zero over 256 samples (within 4 standard errors) only if the
  cells' probabilities match how cameras and timesteps are really drawn (plain and stratified);
  probabilities that ignore the timestep range are caught.
"""

from __future__ import annotations

import pytest
import torch

from sdlib.cell_control_variate import CellControlVariate, CellCVConfig
from sdlib.distill.common import TimestepConfig
from sdlib.nerf.field import FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.train import Trainer, shapezoo_config


def _z(x: torch.Tensor) -> float:
    return float(x.mean() / (x.std() / x.shape[0] ** 0.5))


def test_probabilities_and_cells() -> None:
    cv = CellControlVariate(CellCVConfig(azimuth_bins=4, t_bins=5), [(2,)], (-180.0, 180.0),
                            1000)
    p = cv.probabilities(20, 980)
    assert p.shape == (20,) and abs(float(p.sum()) - 1.0) < 1e-12
    t = torch.arange(20, 981)  # brute force: the integers of each t bin, over 4 azimuth bins
    p_t = torch.bincount(t * 5 // 1000, minlength=5).double() / len(t)
    torch.testing.assert_close(p.reshape(4, 5), p_t.expand(4, 5) / 4)
    assert cv.probabilities(0, 199).reshape(4, 5)[:, 1:].sum() == 0  # only the first t bin
    # azimuth is wrapped to (-180, 180]; a range of [0, 360) unwraps it
    cv360 = CellControlVariate(CellCVConfig(azimuth_bins=4, t_bins=1), [(2,)], (0.0, 360.0), 1000)
    assert cv360.cells(torch.tensor([10.0, 100.0, -170.0, -10.0]),
                       torch.zeros(4, dtype=torch.long)).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="decay"):
        CellCVConfig(decay=0.0)
    with pytest.raises(ValueError, match="lo <= hi"):
        cv.probabilities(500, 100)


def test_the_algebra_is_unbiased_and_an_oracle_table_removes_the_between_cell_part() -> None:
    gen = torch.Generator().manual_seed(0)
    n_cells, dim, n = 6, 3, 4000
    p = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.2, 0.3], dtype=torch.float64)
    m = torch.randn(n_cells, dim, generator=gen) * 5  # between-cell spread ≫ noise
    truth = (p.float()[:, None] * m).sum(0)
    cfg = CellCVConfig(enabled=True, azimuth_bins=1, t_bins=n_cells, decay=0.3)

    def run(table, learn: bool, drop_mean: bool = False):
        cv = CellControlVariate(cfg, [(dim,)], (-180.0, 180.0), 1000)
        cv.table[0].copy_(table)
        cv.seen[:] = True
        out = []
        for _ in range(n):
            c = torch.multinomial(p, 1, generator=gen)
            g = (m[c[0]] + torch.randn(dim, generator=gen))[None]  # [visit, P]
            corrected = cv.correct(g.mean(0), c, torch.zeros_like(p) if drop_mean else p)
            out.append(corrected)
            if learn:
                cv.update(g, c)
        return torch.stack(out)

    plain = run(torch.zeros(n_cells, dim), learn=False)
    noisy_table = run(torch.randn(n_cells, dim, generator=gen) * 10, learn=True)
    oracle = run(m, learn=False)
    for samples in (plain, noisy_table, oracle):
        assert max(abs(_z(samples[:, j] - truth[j])) for j in range(dim)) < 4.0
    # the oracle leaves the within-cell noise (variance 1 per coordinate) and nothing else
    assert float(plain.var(0).mean()) > 10.0 and float(oracle.var(0).mean()) < 1.2
    # positive control: without Σ_j p_j b_j the correction is biased by −E[b_c]
    biased = run(m, learn=False, drop_mean=True)
    assert max(abs(_z(biased[:, j] - truth[j])) for j in range(dim)) > 4.0


def _pair(tiny_prior_folders, **changes):
    root = tiny_prior_folders
    base = dict(
        device="cpu", batch_size=4, render_size=16, eval_every=0, checkpoint_every=0,
        turntable_frames=0, mesh_resolution=0, prior=str(root / "sd"), depth=str(root / "dpt"),
        nerf=FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=8, base_resolution=4)),
        render=RenderConfig(n_samples=12, compute_normals=False), seed=3)
    plain = Trainer(shapezoo_config("a red ball", "sds", **{**base, **changes}))
    cv_cfg = CellCVConfig(enabled=True, azimuth_bins=4, t_bins=4)
    with_cv = Trainer(shapezoo_config("a red ball", "sds", cell_cv=cv_cfg,
                                      **{**base, **changes}), prior=plain.prior)
    return plain, with_cv


def _flat(trainer) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in trainer._parameters()]).double()


def _paired_z(plain, with_cv, n_batches: int = 64, wrong_probabilities: bool = False) -> float:
    gen = torch.Generator().manual_seed(7)
    for table in with_cv.cell_cv.table:  # an arbitrary table, gradient-sized
        table.copy_(torch.randn(table.shape, generator=gen) * 0.05)
    with_cv.cell_cv.seen[:] = True
    if wrong_probabilities:  # every cell equally likely, whatever range t is drawn from
        n = with_cv.cell_cv.config.n_cells
        with_cv.cell_cv.probabilities = lambda lo, hi: torch.full((n,), 1.0 / n,
                                                                  dtype=torch.float64)
    diffs = []
    for _ in range(n_batches):  # same seed, same θ: the same cameras, t and ε in both
        plain.theta_gradient(update_state=False)
        with_cv.theta_gradient(update_state=False)
        diffs.append(_flat(with_cv) - _flat(plain))
    d = torch.stack(diffs)
    dirs = [torch.randn(d.shape[1], generator=gen, dtype=d.dtype) for _ in range(8)]
    half = n_batches // 2
    zs = [_z(d @ (u / u.norm())) for u in dirs]
    u = d[:half].mean(0)
    zs.append(_z(d[half:] @ (u / u.norm())))
    return max(abs(z) for z in zs)


@pytest.mark.parametrize("design", [{}, {"stratified": True}], ids=["iid", "stratified"])
def test_the_cell_corrected_theta_gradient_is_unbiased_on_the_pipeline(tiny_prior_folders,
                                                                        design) -> None:
    plain, with_cv = _pair(tiny_prior_folders, **design)
    z = _paired_z(plain, with_cv)  # 64 batches × 4 views = 256 samples
    print(f"cell control variate {design}: max|z|={z:.2f}")
    assert z < 4.0


def test_wrong_cell_probabilities_are_caught(tiny_prior_folders) -> None:
    plain, with_cv = _pair(tiny_prior_folders, timesteps=TimestepConfig(t_min=0.02, t_max=0.4))
    z = _paired_z(plain, with_cv, wrong_probabilities=True)
    print(f"positive control (probabilities ignore the t range): max|z|={z:.2f}")
    assert z > 4.0


def test_first_step_equals_plain_sds_and_the_table_is_checkpointed(tiny_prior_folders,
                                                                   tmp_path) -> None:
    plain, with_cv = _pair(tiny_prior_folders)
    plain.step()
    record = with_cv.step()  # an empty table: the corrected gradient is the plain one
    for a, b in zip(plain._parameters(), with_cv._parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert 0 < record["cell_cv_filled"] <= 4 / 16
    with_cv.step()
    path = with_cv.save_checkpoint(tmp_path / "ck.pt")
    resumed = Trainer(with_cv.config, prior=with_cv.prior)
    resumed.load_checkpoint(path)
    for a, b in zip(with_cv.cell_cv.table, resumed.cell_cv.table):
        assert torch.equal(a, b)
    assert torch.equal(with_cv.cell_cv.seen, resumed.cell_cv.seen)
    with pytest.raises(ValueError, match="no cell control variate table"):
        plain.save_checkpoint(tmp_path / "plain.pt")
        resumed.load_checkpoint(tmp_path / "plain.pt")


def test_batch_variance_measures_the_cell_design(tiny_prior_folders) -> None:
    from sdlib.distill import SDS
    from sdlib.gradient_variance import batch_variance

    plain, _ = _pair(tiny_prior_folders)
    designs = {"sds": (SDS(), {}),
               "cells": (SDS(), {"cell_cv": CellCVConfig(enabled=True, azimuth_bins=2,
                                                         t_bins=2)})}
    res = batch_variance(plain, designs, n_batches=6, batch_size=4, warmup={"cells": 4},
                         sketch_dim=None, seed=1)
    assert plain.cell_cv is None  # the temporary table is gone
    for name in designs:
        assert res[name]["samples"].shape[0] == 6
        assert torch.isfinite(torch.tensor(res[name]["per_evaluation"]))
    # same draws, different estimators: the cell design's batches differ from plain SDS's
    assert not torch.allclose(res["cells"]["samples"], res["sds"]["samples"])


@pytest.mark.parametrize("antithetic", [False, True], ids=["iid", "antithetic"])
def test_per_view_aliases_give_each_renders_gradient_in_one_backward(tiny_prior_folders,
                                                                     antithetic) -> None:
    """The cell control variate's per-render θ-gradients (sdlib.nerf.per_view: one batched
    render whose views see their own aliases of θ, one backward) against the reference: one
    backward per sample through the plain batched graph, its loss restricted to that sample.
    Renders and latents are the plain ones; each render's gradient is its samples' sum."""
    plain, _ = _pair(tiny_prior_folders, antithetic=antithetic)
    params = plain._parameters()
    runs = []
    for apart in (False, True):
        plain.generator.manual_seed(11)
        cameras, out, latents, views = plain._sample_views(None, apart=apart)
        grad = torch.randn(latents.shape, generator=torch.Generator().manual_seed(5))
        if apart:
            per_render = views.gradients(plain.pullback(out, latents, grad))
            g = torch.stack([torch.cat([gi.flatten() for gi in r]) for r in per_render])
        else:
            per_sample = []
            for k in range(latents.shape[0]):
                loss = plain.pullback(out.select(torch.tensor([k])), latents[k:k + 1],
                                      grad[k:k + 1])
                gk = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                per_sample.append(torch.cat([(torch.zeros_like(p) if gi is None else gi)
                                             .flatten() for p, gi in zip(params, gk)]))
            g = torch.stack(per_sample)
            g = g.reshape(-1, 2, g.shape[1]).sum(1) if antithetic else g
        runs.append((out.rgb.detach(), latents.detach(), g))
    (rgb0, lat0, g0), (rgb1, lat1, g1) = runs
    assert views is not None and len(views.aliases) == (2 if antithetic else 4)
    torch.testing.assert_close(rgb1, rgb0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lat1, lat0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-7)
    assert g0.abs().max() > 0 and (g0[0] - g0[1]).abs().max() > 1e-3 * g0.abs().max()


def test_a_cells_runs_probe_measures_its_own_table_without_changing_it(tiny_prior_folders
                                                                       ) -> None:
    """scripts/claims_sweep.py's cells method: the grid names it, and its light probe measures
    the run's own (lagging) table against the same design without it, leaving the table, θ
    and the generator as they were."""
    import importlib.util
    from pathlib import Path

    from sdlib import claims
    from sdlib.sweep import expand

    path = Path(__file__).resolve().parents[1] / "scripts" / "claims_sweep.py"
    spec = importlib.util.spec_from_file_location("claims_sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    (config,) = sweep.grids("main", (0,), 10, 5, ["a red ball"], methods=("cells",))
    (run,) = expand(config)
    assert claims.label_of("sds", claims._variant(run.run_id, "sds", 0)) == \
        "SDS + cells + antithetic + stratified"

    _, trainer = _pair(tiny_prior_folders, antithetic=True, stratified=True)
    for _ in range(3):
        trainer.step()
    table = [t.clone() for t in trainer.cell_cv.table]
    theta = [p.detach().clone() for p in trainer._parameters()]
    state = trainer.generator.get_state()
    res = sweep._own_cells(trainer, n_batches=4)
    assert all(torch.equal(a, b) for a, b in zip(table, trainer.cell_cv.table))
    assert all(torch.equal(a, p) for a, p in zip(theta, trainer._parameters()))
    assert torch.equal(state, trainer.generator.get_state())
    assert 0 < res["ratio"] < float("inf") and res["filled"] > 0
    assert res["own_table"]["per_evaluation"] != res["without"]["per_evaluation"]
