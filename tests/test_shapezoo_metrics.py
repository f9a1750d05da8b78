"""ShapeZoo ground-truth metrics (issue 3, acceptance 3): hand-computed cases, monotonicity."""

from __future__ import annotations

import math

import pytest
import torch

from sdlib.cameras import eval_cameras
from sdlib.shapezoo import (
    chamfer_distance,
    depth_pearson,
    depth_spread,
    evaluate,
    get_object,
    mask_iou,
    mesh_chamfer,
    psnr,
    render,
    sample_mesh_surface,
    sample_object_surface,
    translated,
)


def test_mask_iou_hand_computed() -> None:
    pred = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    true = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert mask_iou(pred, true).item() == pytest.approx(1 / 3)  # 1 shared pixel of 3
    assert mask_iou(true, true).item() == 1.0
    assert mask_iou(torch.zeros(2, 2), torch.zeros(2, 2)).item() == 1.0  # both empty
    # batch mean: IoU 1/3 and 1
    assert mask_iou(torch.stack([pred, true]), torch.stack([true, true])).item() == pytest.approx(
        2 / 3)


def test_depth_pearson_hand_computed() -> None:
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    a = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    assert depth_pearson(a, 2 * a + 1, mask, mask).item() == pytest.approx(1.0)
    b = torch.tensor([[3.0, 2.0, 1.0, -7.0]])
    assert depth_pearson(a, b, mask, mask).item() == pytest.approx(-1.0)
    # (1, 2, 3) against (1, 3, 2): covariance 0.5 * 2 / (2 * 2) -> r = 0.5
    c = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert depth_pearson(a, c, mask, mask).item() == pytest.approx(0.5)
    # only the intersection of the two masks counts
    other = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert depth_pearson(a, c, mask, other).item() == pytest.approx(1.0)  # (1, 2) vs (1, 3)
    assert math.isnan(depth_pearson(a, c, mask, torch.zeros(1, 4)).item())


def test_depth_spread_hand_computed() -> None:
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    a = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    assert depth_spread(a, a, mask, mask).item() == pytest.approx(1.0)
    assert depth_spread(0.5 * a + 7, a, mask, mask).item() == pytest.approx(0.5)  # scale only
    assert depth_spread(torch.full_like(a, 2.0), a, mask, mask).item() == 0.0  # a flat shell
    flipped = torch.tensor([[3.0, 2.0, 1.0, 0.0]])  # anticorrelated, same spread
    assert depth_spread(flipped, a, mask, mask).item() == pytest.approx(1.0)
    other = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # only (1, 2) vs (1, 2) of the overlap
    assert depth_spread(2 * a, a, mask, other).item() == pytest.approx(2.0)
    assert math.isnan(depth_spread(a, torch.ones_like(a), mask, mask).item())


def test_psnr_hand_computed() -> None:
    true = torch.full((1, 4, 4, 3), 0.1)
    assert psnr(torch.zeros_like(true), true).item() == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert psnr(true, true).item() == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(true, true[:, :2])


def test_chamfer_hand_computed() -> None:
    assert chamfer_distance(torch.zeros(1, 3), torch.tensor([[3.0, 4.0, 0.0]])).item() == 5.0
    a = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0, 0.0]])
    # a -> b: (0 + 1) / 2 = 0.5; b -> a: 0; symmetric mean 0.25
    assert chamfer_distance(a, b).item() == pytest.approx(0.25)
    pts = torch.randn(100, 3)
    assert chamfer_distance(pts, pts).item() == 0.0


def test_surface_samples_lie_on_the_surface() -> None:
    ball = sample_object_surface("a red ball", 500)
    torch.testing.assert_close(ball.norm(dim=-1), torch.full((500,), 0.5), atol=1e-5, rtol=0)
    torus = sample_object_surface("a pink donut", 500).double()
    rho = torch.sqrt(torus[:, 0] ** 2 + torus[:, 1] ** 2)
    torch.testing.assert_close(torch.sqrt((rho - 0.4) ** 2 + torus[:, 2] ** 2),
                               torch.full((500,), 0.18, dtype=torch.float64), atol=1e-5, rtol=0)
    # snowman: no sample strictly inside another sphere of the body
    pts = sample_object_surface("snowman", 2000)
    for centre, radius in (((0, 0, -0.33), 0.32), ((0, 0, 0.1), 0.24), ((0, 0, 0.42), 0.17)):
        assert float(((pts - torch.tensor(centre)).norm(dim=-1) - radius).min()) > -1e-4


def test_cube_mesh_chamfer_and_monotone_offset() -> None:
    trimesh = pytest.importorskip("trimesh")
    cube = trimesh.creation.box(extents=(0.7, 0.7, 0.7))
    pts = sample_mesh_surface(cube, 1000)
    assert float(pts.abs().max()) <= 0.35 + 1e-6
    exact = mesh_chamfer(cube, "a blue cube", n_points=3000)
    assert exact < 0.02  # sampling floor only
    scores = [exact]
    for dx in (0.05, 0.1, 0.2):
        moved = (torch.as_tensor(cube.vertices) + torch.tensor([dx, 0.0, 0.0]), cube.faces)
        scores.append(mesh_chamfer(moved, "a blue cube", n_points=3000))
    assert scores == sorted(scores) and scores[-1] > 0.05


def test_evaluate_identical_and_moved_copies() -> None:
    cams = eval_cameras(8)
    true = render("snowman", cams, 32, 32)
    same = evaluate(true, "a snowman with a carrot nose and a black hat", height=32, width=32)
    assert same["mask_iou"] == 1.0 and same["psnr"] == math.inf
    assert same["depth_pearson"] == pytest.approx(1.0)
    rows = []
    for dy in (0.02, 0.06, 0.15):
        moved = translated(get_object("snowman"), (0.0, dy, 0.0))
        rows.append(evaluate(lambda c, h, w, m=moved: render(m, c, h, w), "snowman",
                             height=32, width=32))
    for key in ("mask_iou", "psnr", "depth_pearson"):
        values = [same[key]] + [r[key] for r in rows]
        assert values == sorted(values, reverse=True), (key, values)
    with pytest.raises(ValueError, match="eval_cameras"):
        evaluate(render("snowman", eval_cameras(4), 32, 32), "snowman", height=32, width=32)


# --------------------------------------------------------------------------- colour error
# CIE L*a*b* (D65) of sRGB colours, as published by Bruce Lindbloom's and EasyRGB's calculators
LAB_REFERENCE = {
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0): (53.2408, 80.0925, 67.2032),
    (0.0, 1.0, 0.0): (87.7347, -86.1827, 83.1793),
    (0.0, 0.0, 1.0): (32.2970, 79.1875, -107.8602),
    (0.5, 0.5, 0.5): (53.3890, 0.0, 0.0),
}


def test_srgb_to_lab_matches_reference_values() -> None:
    from sdlib.shapezoo import srgb_to_lab

    rgb = torch.tensor(list(LAB_REFERENCE))
    lab = srgb_to_lab(rgb)
    torch.testing.assert_close(lab, torch.tensor(list(LAB_REFERENCE.values())), atol=1e-3,
                               rtol=0)
    assert srgb_to_lab(rgb.double()).dtype == torch.float64
    assert srgb_to_lab(rgb[None, None]).shape == (1, 1, 6, 3)
    with pytest.raises(ValueError, match="last dimension must be 3"):
        srgb_to_lab(torch.zeros(2, 4))


def test_color_error_hand_computed() -> None:
    from sdlib.shapezoo import color_error

    red, green = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    true = torch.tensor([[red, red], [green, (0.2, 0.3, 0.4)]])  # [2, 2, 3]
    pred = torch.tensor([[green, red], [green, (0.9, 0.9, 0.9)]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # the last pixel is background: ignored
    de = math.dist(LAB_REFERENCE[red], LAB_REFERENCE[green])  # 170.57
    out = color_error(pred, true, mask)
    assert out["color_delta_e"] == pytest.approx(de / 3, abs=1e-3)
    assert out["color_rgb_mae"] == pytest.approx((2 / 3) / 3)
    same = color_error(true, true, mask)
    assert same == {"color_delta_e": 0.0, "color_rgb_mae": 0.0}
    # per image, then the mean over images; an image with an empty true mask is left out
    batch = color_error(torch.stack([pred, true, pred]), torch.stack([true, true, true]),
                        torch.stack([mask, mask, torch.zeros(2, 2)]))
    assert batch["color_delta_e"] == pytest.approx(de / 6, abs=1e-3)
    assert math.isnan(color_error(pred, true, torch.zeros(2, 2))["color_delta_e"])
    with pytest.raises(ValueError, match="must both be"):
        color_error(pred, true[:1], mask)


def test_color_error_split_by_overlap_and_mean_colour() -> None:
    from sdlib.shapezoo import color_error

    red, green, blue = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
    true = torch.tensor([[red, green], [red, green]])  # [2, 2, 3], all object
    true_mask = torch.ones(2, 2)
    # the render covers the top row only, with the colours swapped; the bottom row is blue
    pred = torch.tensor([[green, red], [blue, blue]])
    pred_mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    out = color_error(pred, true, true_mask, pred_mask=pred_mask)
    rg = math.dist(LAB_REFERENCE[red], LAB_REFERENCE[green])
    assert out["uncovered_fraction"] == pytest.approx(0.5)
    assert out["color_delta_e_overlap"] == pytest.approx(rg, abs=1e-3)  # both pixels swapped
    assert out["color_delta_e_of_mean"] == pytest.approx(0.0, abs=1e-9)  # same mean colour
    whole = (2 * rg + math.dist(LAB_REFERENCE[blue], LAB_REFERENCE[red])
             + math.dist(LAB_REFERENCE[blue], LAB_REFERENCE[green])) / 4
    assert out["color_delta_e"] == pytest.approx(whole, abs=1e-3)
    # a uniform shift: all of the overlap error is the mean's
    dark = color_error(true * 0.5, true, true_mask, pred_mask=true_mask)
    assert dark["uncovered_fraction"] == 0.0
    assert dark["color_delta_e_of_mean"] < dark["color_delta_e_overlap"] + 1e-9
    assert math.isnan(color_error(pred, true, true_mask, pred_mask=torch.zeros(2, 2))[
        "color_delta_e_overlap"])
    with pytest.raises(ValueError, match="pred_mask"):
        color_error(pred, true, true_mask, pred_mask=torch.ones(3, 3))


def true_render_color_error(name: str, perturb, size: int = 16) -> dict[str, float]:
    """:func:`evaluate`'s colour error of ``name``'s true render with ``perturb`` applied to its
    RGB (``perturb(rgb, mask) -> rgb``, ``rgb [B, H, W, 3]``, ``mask [B, H, W, 1]``)."""
    from sdlib.shapezoo import RenderResult

    true = render(name, eval_cameras(8), size, size)
    rgb = perturb(true.rgb, true.mask[..., None]).clamp(0, 1)
    scores = evaluate(RenderResult(rgb, true.depth, true.normals, true.mask), name,
                      height=size, width=size)
    assert scores["uncovered_fraction"] == 0.0  # the true mask: every pixel covered
    assert scores["color_delta_e_overlap"] == pytest.approx(scores["color_delta_e"])
    return {k: scores[k] for k in ("color_delta_e", "color_rgb_mae")}


def test_color_error_of_the_true_render_and_perturbations() -> None:
    name = "a red mushroom with white spots"
    assert true_render_color_error(name, lambda rgb, m: rgb) == {"color_delta_e": 0.0,
                                                                 "color_rgb_mae": 0.0}
    # the background is not scored
    background = true_render_color_error(name, lambda rgb, m: rgb * m + (1 - m) * 0.3)
    assert background == {"color_delta_e": 0.0, "color_rgb_mae": 0.0}
    # darker copies err more the darker they are; swapping red and blue errs most
    dark = [true_render_color_error(name, lambda rgb, m, f=f: rgb * f)["color_delta_e"]
            for f in (0.95, 0.8, 0.5)]
    assert 0 < dark[0] < 5 < dark[1] < dark[2], dark
    swapped = true_render_color_error(name, lambda rgb, m: rgb[..., [2, 1, 0]])
    assert swapped["color_delta_e"] > dark[2] and swapped["color_rgb_mae"] > 0.1, swapped
    # a grey object: the colour error a NeRF that got the shape but no colour would have
    grey = true_render_color_error(name, lambda rgb, m: rgb.mean(-1, keepdim=True).expand_as(rgb))
    assert grey["color_delta_e"] > 10, grey


def test_depth_correlation_of_a_nerf_blob_uses_the_expected_termination_depth() -> None:
    """The initial NeRF (a density blob, semi-transparent towards its rim) against the true
    red ball: its expected termination depth correlates with the truth; the accumulated
    ``Σ w t``, which shrinks with the opacity at the rim, anti-correlates (issue 11)."""
    from sdlib.nerf import FieldConfig, HashGridConfig, RadianceField, RenderConfig, render_cameras

    torch.manual_seed(0)
    field = RadianceField(FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=8,
                                                          base_resolution=4))).eval()
    cams = eval_cameras(8)
    with torch.no_grad():
        out = render_cameras(field, cams, 16, 16,
                             config=RenderConfig(n_samples=32, stratified=False,
                                                 compute_normals=False))
    true = render("a red ball", cams, 16, 16)
    mask = (out.opacity > 0.5).float()
    assert ((out.opacity > 0.5) & (out.opacity < 0.95)).any()  # a semi-transparent rim
    good = depth_pearson(out.depth, true.depth, mask, true.mask).item()
    bad = depth_pearson(out.depth_sum, true.depth, mask, true.mask).item()
    assert good > 0.8 and bad < 0, (good, bad)
