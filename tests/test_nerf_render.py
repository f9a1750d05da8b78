"""Volume rendering: hand-computed weights, empty field, a solid sphere's depth, gradients."""

import math

import pytest
import torch
from torch import nn

from sdlib.cameras import cameras_from_spherical, eval_cameras, get_rays
from sdlib.nerf import (
    FieldConfig,
    HashGridConfig,
    RadianceField,
    RenderConfig,
    ray_box_intersect,
    render_cameras,
    render_rays,
)
from sdlib.nerf.field import Background, BackgroundConfig

TINY_GRID = HashGridConfig(n_levels=4, log2_table_size=10, base_resolution=4)


class StubField(nn.Module):
    """A field with a density given by a function and a constant colour."""

    def __init__(self, density_fn, color=(0.2, 0.4, 0.6), background=(1.0, 1.0, 1.0)):
        super().__init__()
        self.config = FieldConfig(bound=1.0, grid=TINY_GRID)
        self.density_fn = density_fn
        self.color = torch.tensor(color)
        self.background = Background(BackgroundConfig(color=background))
        self.dummy = nn.Parameter(torch.zeros(()))

    def density(self, x):
        return self.density_fn(x) + 0 * self.dummy

    def forward(self, x):
        return self.density(x), self.color.expand(*x.shape[:-1], 3)

    def normals(self, x):
        return torch.nn.functional.normalize(x, dim=-1)


def test_weights_by_hand():
    """One ray along +x from x = -2: the box [-1, 1] is crossed between t = 1 and t = 3.

    Two dense samples, intervals [1, 2] and [2, 3] (delta = 1), midpoints x = -0.5 and 0.5.
    Density 0.5 for x < 0 and 2 for x > 0:
        alpha_1 = 1 - e^-0.5 = 0.393469,  T_1 = 1,               w_1 = 0.393469
        alpha_2 = 1 - e^-2   = 0.864665,  T_2 = e^-0.5 = 0.606531, w_2 = 0.524446
        opacity = 0.917915; depth_sum = 1.5 w_1 + 2.5 w_2 = 1.901318
        depth = depth_sum / opacity = 2.071344 (expected termination depth)
        rgb = opacity * c + (1 - opacity) * white
    """
    field = StubField(lambda x: torch.where(x[..., 0] < 0, 0.5, 2.0)).eval()
    origins = torch.tensor([[-2.0, 0.0, 0.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0]])
    out = render_rays(field, origins, directions,
                      config=RenderConfig(n_samples=2, stratified=False, compute_normals=False))
    w1, w2 = 1 - math.exp(-0.5), math.exp(-0.5) * (1 - math.exp(-2.0))
    assert w1 == pytest.approx(0.393469, abs=1e-6) and w2 == pytest.approx(0.524446, abs=1e-6)
    torch.testing.assert_close(out.opacity, torch.tensor([w1 + w2]))
    torch.testing.assert_close(out.depth_sum, torch.tensor([1.5 * w1 + 2.5 * w2]))
    torch.testing.assert_close(out.depth, torch.tensor([(1.5 * w1 + 2.5 * w2) / (w1 + w2)]))
    assert out.depth.item() == pytest.approx(2.071344, abs=1e-5)
    expected = (w1 + w2) * torch.tensor([0.2, 0.4, 0.6]) + (1 - w1 - w2) * torch.ones(3)
    torch.testing.assert_close(out.rgb[0], expected)


def test_inline_transmittance_matches_nerfacc():
    from nerfacc import render_weight_from_density

    sigmas = torch.tensor([[1.0, 2.0, 0.5, 0.0]])
    t = torch.tensor([[0.0, 0.5, 1.0, 1.5, 2.0]])
    delta = t[:, 1:] - t[:, :-1]
    alpha = 1 - torch.exp(-sigmas * delta)  # 0.393469, 0.632121, 0.221199, 0
    trans = torch.cumprod(torch.cat([torch.ones(1, 1), 1 - alpha[:, :-1]], dim=1), dim=1)
    # T = 1, 0.606531, 0.223130, 0.173774
    weights = trans * alpha  # 0.393469, 0.383401, 0.049357, 0
    torch.testing.assert_close(
        weights, torch.tensor([[0.393469, 0.383401, 0.049357, 0.0]]), atol=1e-6, rtol=0
    )
    w_nerfacc, trans_nerfacc, _ = render_weight_from_density(t[:, :-1], t[:, 1:], sigmas)
    torch.testing.assert_close(w_nerfacc, weights)
    torch.testing.assert_close(trans_nerfacc, trans)


def test_empty_field_renders_background():
    field = StubField(lambda x: torch.zeros(x.shape[:-1]), background=(0.1, 0.7, 0.3))
    out = render_cameras(field, eval_cameras(2), 6, 5, config=RenderConfig(n_samples=8))
    assert out.rgb.shape == (2, 6, 5, 3) and out.depth.shape == (2, 6, 5)
    torch.testing.assert_close(out.rgb, torch.tensor([0.1, 0.7, 0.3]).expand(2, 6, 5, 3))
    assert out.opacity.abs().max() == 0 and out.depth.abs().max() == 0
    assert out.normals.abs().max() == 0


def test_solid_sphere_depth():
    radius = 0.5
    field = StubField(lambda x: torch.where(x.norm(dim=-1) < radius, 1e4, 0.0)).eval()
    cams = cameras_from_spherical(torch.tensor([0.0, 30.0]), torch.tensor([0.0, 120.0]), 1.75,
                                  50.0)
    out = render_cameras(field, cams, 16, 16,
                         config=RenderConfig(n_samples=512, stratified=False))
    o, d = get_rays(cams, 16, 16)
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - radius**2)
    hit = disc > 0.01  # away from grazing rays
    true_depth = -b - disc.clamp(min=0).sqrt()
    assert hit.sum() > 20
    torch.testing.assert_close(out.opacity[hit], torch.ones_like(out.opacity[hit]))
    # samples 2 sqrt(3) / 512 apart at most; the first sample inside the sphere stops the ray
    assert (out.depth[hit] - true_depth[hit]).abs().max() < 0.01
    # normals point outward: along (p - 0) / radius at the hit point
    p = o + true_depth[..., None] * d
    cos = torch.nn.functional.cosine_similarity(out.normals[hit], p[hit], dim=-1)
    assert cos.min() > 0.99
    assert out.opacity[~(disc > 0)].abs().max() == 0


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.95])
def test_semi_transparent_sheet_depth_is_the_sheet_distance(alpha):
    """A thin homogeneous sheet ``0 <= x < L`` (``|y|, |z| < 0.4``) of total opacity ``alpha``,
    seen along +x from x = -2 (it starts at ``a = 2``).

    Every ray that terminates does so inside the sheet; for density ``s`` the expected
    termination depth is ``a + 1/s - L e^{-sL} / (1 - e^{-sL})`` (within ``[a, a + L]``)
    whatever the opacity, while the accumulated ``sum w t`` is ``alpha`` times it (and
    its inverse ``1/alpha`` times too large).
    """
    length = 0.02
    s = -math.log(1 - alpha) / length
    expected = 2.0 + 1 / s - length * math.exp(-s * length) / (1 - math.exp(-s * length))

    def density(x):
        inside = (x[..., 0] >= 0) & (x[..., 0] < length) & (x[..., 1:].abs() < 0.4).all(-1)
        return torch.where(inside, s, 0.0)

    field = StubField(density).eval()
    origins = torch.tensor([[-2.0, 0.0, 0.0], [-2.0, 0.3, -0.2]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    cfg = RenderConfig(n_samples=4000, stratified=False, compute_normals=False)
    out = render_rays(field, origins, directions, config=cfg)
    assert out.opacity.tolist() == pytest.approx([alpha, alpha], abs=2e-3)
    assert out.depth.tolist() == pytest.approx([expected, expected], abs=1e-3)
    torch.testing.assert_close(out.depth_sum, out.depth * out.opacity)
    # per pixel through render_cameras: a camera at x = 2 looking at -x sees the sheet's back
    # face at t = 1.98 (a = 1.98 for rays along the axis), empty pixels get depth 0
    cams = cameras_from_spherical(torch.tensor([0.0]), torch.tensor([0.0]), 2.0, 40.0)
    img = render_cameras(field, cams, 9, 9, config=cfg)
    hit = img.opacity > 1e-3
    assert 0 < hit.sum() < hit.numel()
    assert img.depth[0, 4, 4].item() == pytest.approx(expected - 0.02, abs=1e-3)
    torch.testing.assert_close(img.depth_sum, img.depth * img.opacity)
    assert img.depth[~hit].abs().max() == 0


def test_expected_depth_empty_pixels_and_gradient():
    from sdlib.nerf import expected_depth

    depth_sum = torch.tensor([0.0, 1e-9, 0.6, 1.2], requires_grad=True)
    opacity = torch.tensor([0.0, 1e-9, 0.3, 1.0], requires_grad=True)
    d = expected_depth(depth_sum, opacity)
    torch.testing.assert_close(d, torch.tensor([0.0, 0.0, 2.0, 1.2]))
    d.sum().backward()
    assert torch.isfinite(depth_sum.grad).all() and torch.isfinite(opacity.grad).all()


def test_ray_box_intersect():
    o = torch.tensor([[-3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    near, far, hit = ray_box_intersect(o, d, 1.0)
    torch.testing.assert_close(near, torch.tensor([2.0, 0.0, 0.0]))
    torch.testing.assert_close(far[:2], torch.tensor([4.0, 1.0]))
    assert hit.tolist() == [True, True, False]


def test_radiance_field_blob_and_gradients():
    field = RadianceField(FieldConfig(grid=TINY_GRID, hidden_dim=16))
    sigma_centre = field.density(torch.zeros(1, 3))
    sigma_far = field.density(torch.tensor([[0.9, 0.0, 0.0]]))
    assert sigma_centre.item() > 5.0 and sigma_far.item() < 0.1  # blob of height 10, radius 0.5
    assert field.density(torch.tensor([[1.5, 0.0, 0.0]])).item() == 0.0  # outside the box
    out = render_cameras(field, eval_cameras(1), 8, 8, config=RenderConfig(n_samples=16))
    loss = out.rgb.mean() + out.depth.mean() + out.normals.square().mean()
    loss.backward()
    assert field.encoding.table.grad.abs().sum() > 0
    assert field.color_mlp[0].weight.grad.abs().sum() > 0


def test_analytic_and_finite_difference_normals_agree():
    x = torch.tensor([[0.3, 0.1, -0.2], [0.0, 0.35, 0.1]])
    fd = RadianceField(FieldConfig(grid=TINY_GRID, hidden_dim=16, normal_eps=1e-3))
    analytic = RadianceField(FieldConfig(grid=TINY_GRID, hidden_dim=16, normals="analytic"))
    analytic.load_state_dict(fd.state_dict())
    cos = torch.nn.functional.cosine_similarity(fd.normals(x), analytic.normals(x), dim=-1)
    assert cos.min() > 0.99
    radial = torch.nn.functional.cosine_similarity(fd.normals(x), x, dim=-1)
    assert radial.min() > 0.9  # the blob dominates at init: normals point outwards


def test_chunking_does_not_change_the_render():
    torch.manual_seed(0)
    field = RadianceField(FieldConfig(grid=TINY_GRID, hidden_dim=16)).eval()
    cfg = RenderConfig(n_samples=16, stratified=False)
    a = render_cameras(field, eval_cameras(1), 6, 6, config=cfg)
    b = render_cameras(field, eval_cameras(1), 6, 6, config=RenderConfig(
        n_samples=16, stratified=False, chunk=7))
    torch.testing.assert_close(a.rgb, b.rgb)
    torch.testing.assert_close(a.depth, b.depth)


def test_occgrid_sampler_needs_cuda_and_estimator():
    field = StubField(lambda x: torch.zeros(x.shape[:-1]))
    with pytest.raises(ValueError, match="occgrid"):
        render_rays(field, torch.zeros(1, 3), torch.ones(1, 3) / math.sqrt(3),
                    config=RenderConfig(sampler="occgrid"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_dense_paths_agree():
    torch.manual_seed(0)
    grid = HashGridConfig(n_levels=8, log2_table_size=15, backend="torch")
    field = RadianceField(FieldConfig(grid=grid, hidden_dim=32))
    with torch.no_grad():
        field.encoding.table.uniform_(-1, 1)
    field.eval()
    cams = eval_cameras(2)
    cfg = RenderConfig(sampler="dense", n_samples=64, stratified=False)
    with torch.no_grad():
        cpu = render_cameras(field, cams, 16, 16, config=cfg)
    for backend in ("torch", "triton"):
        cuda_field = RadianceField(FieldConfig(grid=HashGridConfig(
            n_levels=8, log2_table_size=15, backend=backend), hidden_dim=32))
        cuda_field.load_state_dict(field.state_dict())
        cuda_field = cuda_field.cuda().eval()
        with torch.no_grad():
            gpu = render_cameras(cuda_field, cams.to("cuda"), 16, 16, config=cfg)
        for key in ("rgb", "depth_sum", "opacity", "normals"):
            torch.testing.assert_close(getattr(gpu, key).cpu(), getattr(cpu, key),
                                       atol=1e-4, rtol=0)
        # depth = depth_sum / opacity: its rounding error grows as 1 / opacity, so compare it
        # where the ray is mostly absorbed (measured: 7e-3 apart where the opacity is small)
        solid = cpu.opacity > 0.5
        assert solid.any()
        torch.testing.assert_close(gpu.depth.cpu()[solid], cpu.depth[solid], atol=3e-4, rtol=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_occgrid_path_renders_with_gradients():
    from sdlib.nerf import make_estimator, update_occupancy

    field = RadianceField(FieldConfig(hidden_dim=32)).cuda()
    cfg = RenderConfig()
    estimator = make_estimator(field, cfg)
    update_occupancy(estimator, field, 0, cfg)
    out = render_cameras(field, eval_cameras(2, device="cuda"), 32, 32, estimator=estimator,
                         config=cfg)
    assert out.opacity.max() > 0.5  # the blob is seen
    (out.rgb.mean() + out.normals.square().mean()).backward()
    assert field.encoding.table.grad.abs().sum() > 0
    dense = render_cameras(field.eval(), eval_cameras(2, device="cuda"), 32, 32,
                           config=RenderConfig(sampler="dense", n_samples=512, stratified=False))
    assert (dense.opacity - out.opacity.detach()).abs().mean() < 0.02
    # the packed path divides by the opacity too: depth is the expected termination depth
    torch.testing.assert_close(out.depth_sum, out.depth * out.opacity)
    seen = (dense.opacity > 0.5) & (out.opacity > 0.5)
    assert (dense.depth - out.depth.detach())[seen].abs().mean() < 0.02


def test_scene_floor_starts_dense_below_and_empty_above():
    """FieldConfig.floor_z: with the scenes' inverted blob (empty around the cameras) the floor
    bias makes the field dense just below the ground plane and leaves it empty just above."""
    from dataclasses import replace

    from sdlib.scene_preset import SCENE_FIELD

    with torch.no_grad():
        floorless = RadianceField(SCENE_FIELD)
        with_floor = RadianceField(replace(SCENE_FIELD, floor_z=-0.5))
        with_floor.load_state_dict(floorless.state_dict())  # the same network, only the bias
        below = torch.tensor([[0.0, 0.0, -0.55], [0.3, -0.2, -0.6]])
        above = torch.tensor([[0.0, 0.0, -0.4], [0.3, -0.2, -0.3]])
        assert floorless.density(below).max() < 0.05  # the inverted blob empties the floor
        assert with_floor.density(below).min() > 5.0
        assert torch.allclose(with_floor.density(above), floorless.density(above), atol=1e-2)
    with pytest.raises(ValueError, match="floor_width"):
        FieldConfig(floor_width=0.0)
