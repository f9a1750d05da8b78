"""ShapeZoo ground-truth metrics (issue 3, acceptance 3): hand-computed cases, monotonicity."""

from __future__ import annotations

import math

import pytest
import torch

from sdlib.cameras import eval_cameras
from sdlib.shapezoo import (
    chamfer_distance,
    depth_pearson,
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
