"""Per-view θ-gradients from one batched render (sdlib.nerf.per_view).

Reference: one backward per view through the plain batched render, its loss restricted to that
view's pixels. The aliased render must give the same pixels, each view's gradient from one
backward, and gradients that sum to the plain one: field, background MLP and normals alike, on
the CPU's dense sampler and (CUDA) nerfacc's packed occupancy-grid sampler with the Triton
encoding.
"""

from __future__ import annotations

import pytest
import torch

from sdlib.cameras import eval_cameras
from sdlib.nerf.field import BackgroundConfig, FieldConfig, RadianceField
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.per_view import ViewParameters
from sdlib.nerf.render import RenderConfig, render_cameras


def _loss_weights(out, seed: int = 3):
    gen = torch.Generator().manual_seed(seed)
    w_rgb = torch.randn(out.rgb.shape, generator=gen).to(out.rgb.device)
    w_n = torch.randn(out.normals.shape, generator=gen).to(out.rgb.device)
    return lambda o, k: (o.rgb[k] * w_rgb[k]).sum() + (o.normals[k] * w_n[k]).sum()


def _check(field, cams, size, device, **render):
    params = list(field.parameters())
    plain = render_cameras(field, cams, size, size, **render)
    views = ViewParameters(field, params, n_views=len(cams), rays_per_view=size * size)
    aliased = render_cameras(field, cams, size, size, views=views, **render)
    torch.testing.assert_close(aliased.rgb, plain.rgb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(aliased.normals, plain.normals, rtol=1e-5, atol=1e-6)
    part = _loss_weights(plain)
    reference = []
    for k in range(len(cams)):
        g = torch.autograd.grad(part(plain, k), params, retain_graph=True, allow_unused=True)
        reference.append(torch.cat([(torch.zeros_like(p) if gi is None else gi).flatten()
                                    for p, gi in zip(params, g)]))
    reference = torch.stack(reference)
    per_view = views.gradients(sum(part(aliased, k) for k in range(len(cams))))
    got = torch.stack([torch.cat([g.flatten() for g in view]) for view in per_view])
    scale = reference.abs().max()
    assert scale > 0 and (reference[0] - reference[1]).abs().max() > 1e-3 * scale
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-6 * float(scale))
    # the background MLP's parameters get per-view gradients too
    names = [n for n, _ in field.named_parameters()]
    i = names.index("background.mlp.0.weight")
    assert all(view[i].abs().max() > 0 for view in per_view)


def test_aliased_render_gives_each_views_gradient_on_the_cpu() -> None:
    torch.manual_seed(0)
    field = RadianceField(FieldConfig(grid=HashGridConfig(n_levels=4, log2_table_size=12),
                                      hidden_dim=32, background=BackgroundConfig(kind="mlp")))
    cams = eval_cameras(3)
    _check(field.eval(), cams, 8, "cpu",
           config=RenderConfig(n_samples=24, compute_normals=True, chunk=100))  # chunks cut views


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_aliased_render_gives_each_views_gradient_with_the_occupancy_grid() -> None:
    from sdlib.nerf import make_estimator, update_occupancy

    torch.manual_seed(0)
    field = RadianceField(FieldConfig(hidden_dim=32, background=BackgroundConfig(kind="mlp")))
    field = field.cuda().eval()  # eval: no jitter, so the two renders sample the same points
    cfg = RenderConfig(compute_normals=True)
    estimator = make_estimator(field, cfg)
    update_occupancy(estimator, field, 0, cfg)
    assert field.encoding.resolve_backend(torch.zeros(1, 3, device="cuda")) in ("triton", "torch")
    _check(field, eval_cameras(3, device="cuda"), 32, "cuda", estimator=estimator, config=cfg)


def test_view_parameters_need_ordered_rays_and_matching_cameras() -> None:
    field = RadianceField(FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=10)))
    views = ViewParameters(field, list(field.parameters()), n_views=2, rays_per_view=16)
    with pytest.raises(ValueError, match="views are for 2 cameras of 16 rays"):
        render_cameras(field, eval_cameras(3), 4, 4, config=RenderConfig(n_samples=4),
                       views=views)
    ids = torch.tensor([0, 5, 16, 17], dtype=torch.int32)  # nerfacc's packed indices' dtype
    x = torch.rand(4, 3)
    torch.testing.assert_close(views.call("density", x, ids), field.density(x))
    with pytest.raises(ValueError, match="ordered camera by camera"):
        views.call("density", torch.zeros(3, 3), torch.tensor([20, 3, 1]))
    with pytest.raises(ValueError, match="not the field's"):
        ViewParameters(field, [torch.nn.Parameter(torch.zeros(2))], 1, 1)
