"""The camera convention of sdlib.cameras (issue 3, acceptance 4)."""

from __future__ import annotations

import pytest
import torch

from sdlib.cameras import (
    PAPER_CAMERAS,
    SHAPEZOO_CAMERAS,
    VIEW_SUFFIXES,
    CameraConfig,
    cameras_from_spherical,
    eval_cameras,
    get_rays,
    intrinsics,
    project,
    sample_cameras,
    view_prompt,
    view_suffix,
)


@pytest.mark.parametrize(
    "elevation,azimuth,expected",
    [
        (0.0, 0.0, "front view"),
        (0.0, 44.9, "front view"),
        (0.0, -44.9, "front view"),
        (0.0, 45.0, "side view"),  # exactly on the threshold: not front (strict <)
        (0.0, -45.0, "side view"),
        (0.0, 90.0, "side view"),
        (0.0, 135.0, "side view"),  # exactly on the back threshold: not back (strict >)
        (0.0, 135.1, "back view"),
        (0.0, -135.1, "back view"),
        (0.0, 180.0, "back view"),
        (0.0, -180.0, "back view"),
        (0.0, 360.0, "front view"),  # wrapped
        (0.0, 315.0, "side view"),  # wraps to -45
        (60.0, 0.0, "front view"),  # exactly 60: not overhead (strict >)
        (60.1, 0.0, "overhead view"),
        (60.1, 180.0, "overhead view"),
        (-10.0, 180.0, "back view"),
    ],
)
def test_view_suffix_thresholds(elevation: float, azimuth: float, expected: str) -> None:
    assert view_suffix(elevation, azimuth) == [expected]
    cams = cameras_from_spherical(elevation, azimuth, 1.75, 55.0)
    assert cams.view_suffixes() == [expected]
    assert VIEW_SUFFIXES[int(cams.view_indices()[0])] == expected


def test_view_prompt() -> None:
    assert view_prompt("a red ball", "side view") == "a red ball, side view"
    with pytest.raises(ValueError, match="front view"):
        view_prompt("a red ball", "top view")


def test_azimuth_zero_looks_at_the_front() -> None:
    cams = cameras_from_spherical(0.0, 0.0, 1.75, 55.0)
    assert cams.origins[0].tolist() == pytest.approx([1.75, 0.0, 0.0], abs=1e-6)
    _, d = get_rays(cams, 5, 5)
    assert d[0, 2, 2].tolist() == pytest.approx([-1.0, 0.0, 0.0], abs=1e-6)
    # the front (+x) point is nearer than the back (-x) point, both at the image centre
    pix, depth = project(torch.tensor([[[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]]]), cams, 5, 5)
    assert pix[0].reshape(-1).tolist() == pytest.approx([2.5] * 4, abs=1e-5)
    assert depth[0].tolist() == pytest.approx([1.25, 2.25], abs=1e-5)
    # image right is world +y and image up is world +z seen from the front
    pix, _ = project(torch.tensor([[[0.0, 0.3, 0.0], [0.0, 0.0, 0.3]]]), cams, 64, 64)
    assert pix[0, 0, 0] > 32 and pix[0, 1, 1] < 32
    back = cameras_from_spherical(0.0, 180.0, 1.75, 55.0)
    assert back.origins[0].tolist() == pytest.approx([-1.75, 0.0, 0.0], abs=1e-5)


def test_azimuth_zero_sees_the_front_of_a_shapezoo_object() -> None:
    from sdlib.shapezoo import render

    cams = cameras_from_spherical(torch.tensor([5.0, 5.0]), torch.tensor([0.0, 180.0]), 1.75, 55.0)
    out = render("a snowman with a carrot nose and a black hat", cams, 64, 64)
    orange = (out.rgb[..., 0] > 2.0 * out.rgb[..., 2] + 0.2) & (out.mask > 0)  # the carrot
    assert orange[0].sum() > 3 and orange[1].sum() == 0


def test_projection_lands_on_the_pixel_of_its_ray() -> None:
    g = torch.Generator().manual_seed(0)
    cams = sample_cameras(PAPER_CAMERAS, 6, generator=g)
    H, W = 24, 32
    o, d = get_rays(cams, H, W)
    i = torch.randint(H, (6, 50), generator=g)
    j = torch.randint(W, (6, 50), generator=g)
    t = 0.5 + 2.0 * torch.rand(6, 50, generator=g)
    b = torch.arange(6)[:, None]
    points = o[b, i, j] + t[..., None] * d[b, i, j]
    pix, depth = project(points, cams, H, W)
    torch.testing.assert_close(pix[..., 0], j + 0.5, atol=1e-3, rtol=0)
    torch.testing.assert_close(pix[..., 1], i + 0.5, atol=1e-3, rtol=0)
    torch.testing.assert_close(depth, t, atol=1e-5, rtol=1e-5)


def test_intrinsics_agree_with_project() -> None:
    cams = sample_cameras(PAPER_CAMERAS, 3, generator=torch.Generator().manual_seed(1))
    pts = torch.randn(3, 10, 3, generator=torch.Generator().manual_seed(2)) * 0.3
    pix, _ = project(pts, cams, 20, 30)
    K = intrinsics(cams, 20, 30)
    rot, pos = cams.c2w[:, :3, :3], cams.c2w[:, :3, 3]
    p_cam = torch.einsum("bji,bnj->bni", rot, pts - pos[:, None])
    p_cv = torch.stack([p_cam[..., 0], -p_cam[..., 1], -p_cam[..., 2]], dim=-1)  # x right, y down
    uvw = torch.einsum("bij,bnj->bni", K, p_cv)
    torch.testing.assert_close(uvw[..., :2] / uvw[..., 2:], pix, atol=1e-4, rtol=0)


def test_sampling_stays_in_range() -> None:
    cams = sample_cameras(PAPER_CAMERAS, 500, generator=torch.Generator().manual_seed(0))
    assert cams.distance.min() >= 1.5 and cams.distance.max() <= 2.0
    assert cams.fovy.min() >= 40 and cams.fovy.max() <= 70
    assert cams.elevation.min() >= -10 and cams.elevation.max() <= 45
    zoo = sample_cameras(SHAPEZOO_CAMERAS, 50, generator=torch.Generator().manual_seed(0))
    assert torch.all(zoo.distance == 1.75) and torch.all(zoo.fovy == 55.0)
    torch.testing.assert_close(zoo.origins.norm(dim=-1), zoo.distance)
    ev = eval_cameras(8)
    assert ev.azimuth[0] == 0 and len(ev) == 8 and ev.view_suffixes()[0] == "front view"


@pytest.mark.parametrize(
    "kwargs,accepted",
    [
        ({"distance": (0.5, 2.0)}, "(1, inf)"),
        ({"fovy": (10.0, 190.0)}, "(0, 180)"),
        ({"elevation": (-95.0, 10.0)}, "(-90, 90)"),
        ({"elevation": (30.0, 10.0)}, "low <= high"),
        ({"azimuth": (-400.0, 0.0)}, "[-360, 360]"),
        ({"front_threshold": 200.0}, "[0, 180]"),
        ({"overhead_threshold": 100.0}, "[-90, 90]"),
    ],
)
def test_invalid_ranges_raise_with_accepted_values(kwargs: dict, accepted: str) -> None:
    with pytest.raises(ValueError) as info:
        CameraConfig(**kwargs)
    assert accepted in str(info.value) and next(iter(kwargs)) in str(info.value)
