"""SSD is unbiased on the real pipeline: shipped ShapeZoo-SD and ShapeZoo-DPT, a tiny NeRF, CPU.

At a fixed θ and camera, over 256 draws of (t, ε), the SSD gradient on the render's latent ``x``
(DESIGN.md §2: for a latent prior, ``x`` is the VAE latent of the render; the pull-back to
pixels and to θ is a fixed linear map, so equal means on ``x`` give equal means there) has the
same mean as the SDS gradient. The test is paired: both estimators use the same (t, ε), and the
per-sample difference must have mean zero.

The 1,024 latent coordinates are correlated and heavy-tailed, so a χ² sum over coordinates is
not calibrated. We test scalar projections, each with an honest standard error: on the SDS mean
direction, on random directions, and on the direction of the difference estimated from the
other half of the samples (a split-sample test for a bias of unknown direction).

Teeth: with the depth baseline, ``E[∇φ]`` is tiny, so even the project page's printed form
(bias ``(1 + σ) μ E[∇φ]``) would pass. With a linear baseline ``φ = <v, x_t>`` along a random
unit direction ``v`` (``∇φ = v``), the printed form's mean difference along ``v`` is detected at
more than 10 standard errors, while the corrected form passes the same test.
"""

from __future__ import annotations

import pytest
import torch

from sdlib.cameras import eval_cameras
from sdlib.control_variates import stein_control_variate, stein_control_variate_printed
from sdlib.distill import (
    TimestepConfig,
    add_noise,
    alpha_sigma,
    constant_baseline,
    depth_baseline,
    sample_timesteps,
    sds_gradient,
    ssd_gradient,
    weighting,
)
from sdlib.nerf.field import FieldConfig, RadianceField
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig, render_cameras
from sdlib.priors import DepthPrior, DiffusionPrior

PROMPT = "a red mushroom with white spots"
N_SAMPLES, BATCH = 256, 64


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    prior = DiffusionPrior(model="shapezoo", device="cpu")
    depth = DepthPrior(model="shapezoo", device="cpu")
    field = RadianceField(FieldConfig(grid=HashGridConfig(n_levels=4, log2_table_size=12)))
    cams = eval_cameras(8)[1:2]  # one fixed camera (azimuth 45)
    with torch.no_grad():
        out = render_cameras(field, cams, 64, 64,
                             config=RenderConfig(n_samples=32, stratified=False))
        latents = prior.encode_images(out.rgb.permute(0, 3, 1, 2))
    direction = torch.randn(latents[0].numel(), generator=torch.Generator().manual_seed(3))
    return prior, depth, cams, out, latents, direction / direction.norm()


def _paired_differences(pipeline, baseline: str, form: str = "stein", mu: float = 0.8):
    """``[N, D]`` per-sample SSD − SDS latent gradients (same t, ε) and ``[N, D]`` SDS ones."""
    prior, depth, cams, out, latents, v = pipeline
    abar = prior.alphas_cumprod
    tcfg = TimestepConfig()
    text = prior.text_embeddings(PROMPT).for_views(cams.view_indices())
    if baseline == "depth":
        phi = depth_baseline(prior.decode_latents, depth, out.depth, out.opacity)
    elif baseline == "linear":
        def phi(x_t: torch.Tensor) -> torch.Tensor:
            return x_t.flatten(1) @ v
    else:
        phi = constant_baseline
    g = torch.Generator().manual_seed(1)
    diffs, sds_all = [], []
    for _ in range(N_SAMPLES // BATCH):
        x = latents.expand(BATCH, -1, -1, -1)
        t = sample_timesteps(tcfg, 0, BATCH, prior.num_train_timesteps, generator=g)
        eps = torch.randn(x.shape, generator=g)
        x_t = add_noise(x, eps, abar, t)
        w = weighting(tcfg, abar, t)
        _, sigma = alpha_sigma(abar, t)
        with torch.no_grad():
            eps_pred = prior.predict_noise(x_t, t, text.expand(BATCH, -1, -1), 7.5)
        g_sds = sds_gradient(eps_pred, eps, w)
        if form == "printed":
            h, _ = stein_control_variate_printed(phi, x_t, eps)
        else:
            h, _ = stein_control_variate(phi, x_t, eps, sigma)
        g_ssd = ssd_gradient(eps_pred, h, mu, w)
        diffs.append((g_ssd - g_sds).flatten(1).double())
        sds_all.append(g_sds.flatten(1).double())
    return torch.cat(diffs), torch.cat(sds_all)


def _z(projected: torch.Tensor) -> float:
    return float(projected.mean() / (projected.std() / projected.shape[0] ** 0.5))


def _split_z(d: torch.Tensor) -> float:
    """z of the second half's mean difference along the first half's mean difference."""
    half = d.shape[0] // 2
    direction = d[:half].mean(0)
    return _z(d[half:] @ (direction / direction.norm()))


def test_ssd_depth_baseline_mean_equals_sds_mean(pipeline) -> None:
    d, sds = _paired_differences(pipeline, "depth")
    assert d.shape[0] >= 256
    assert float(d.abs().max()) > 0  # SSD's control variate is not SDS's
    gen = torch.Generator().manual_seed(7)
    directions = [sds.mean(0)] + [torch.randn(d.shape[1], generator=gen, dtype=d.dtype)
                                  for _ in range(10)]
    for u in directions:
        z = _z(d @ (u / u.norm()))
        assert abs(z) < 4.0, f"projected mean difference at {z:.2f} standard errors"
    assert abs(_split_z(d)) < 4.0
    assert abs(_split_z(d.flip(0))) < 4.0


def test_the_projection_test_has_teeth(pipeline) -> None:
    v = pipeline[-1].double()
    d_printed, _ = _paired_differences(pipeline, "linear", form="printed")
    assert abs(_z(d_printed @ v)) > 10.0
    d_stein, _ = _paired_differences(pipeline, "linear", form="stein")
    assert abs(_z(d_stein @ v)) < 4.0


def test_constant_baseline_unit_mu_is_sds_exactly_on_the_pipeline(pipeline) -> None:
    d, _ = _paired_differences(pipeline, "constant", mu=1.0)
    assert torch.equal(d, torch.zeros_like(d))
