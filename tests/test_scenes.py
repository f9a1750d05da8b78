"""ShapeZoo scenes: rendering from inside, exact shells, placement, captions, CPU vs CUDA."""

from __future__ import annotations

import math

import pytest
import torch

from sdlib.cameras import (
    SCENE_CAMERAS,
    CameraConfig,
    cameras_from_spherical,
    eval_cameras,
    get_rays,
    sample_cameras,
)
from sdlib.shapezoo import OBJECTS, sample_views
from sdlib.shapezoo.primitives import (
    box,
    cone,
    ellipsoid,
    frustum,
    inside,
    rotation_euler,
    sample_surface,
    torus,
)
from sdlib.shapezoo.render import render, render_objects, shade
from sdlib.shapezoo.scenes import (
    CLEAR_RADIUS,
    FLOOR_Z,
    ROOM_HALF,
    SCENE_BOUND,
    SCENE_PROMPTS,
    SCENES,
    get_scene,
    is_scene_prompt,
    part_bottom,
    place,
    scene_index,
)


def test_catalogue() -> None:
    assert len(SCENES) >= 6
    assert len(set(SCENE_PROMPTS)) == len(SCENES)
    assert not set(SCENE_PROMPTS) & {o.prompt for o in OBJECTS}
    for i, s in enumerate(SCENES):
        assert scene_index(s.prompt.upper()) == i and get_scene(s.name) is s
        assert is_scene_prompt(s.prompt)
    assert not is_scene_prompt(OBJECTS[0].prompt)
    with pytest.raises(KeyError, match="accepted prompts"):
        get_scene("a castle on the moon")


def test_inside_camera_config() -> None:
    cams = sample_cameras(SCENE_CAMERAS, 64, generator=torch.Generator().manual_seed(0))
    d = cams.origins.norm(dim=-1)
    assert d.min() >= 0.1 - 1e-6 and d.max() <= 0.5 + 1e-6
    # looking through the centre: the view axis (-z column) points at the origin
    fwd = -cams.c2w[:, :3, 2]
    torch.testing.assert_close(fwd, -cams.origins / d[:, None])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        CameraConfig(distance=(0.5, 1.5), inside=True)
    with pytest.raises(ValueError, match=r"\(1, inf\)"):
        CameraConfig(distance=(0.3, 0.5))


def test_every_scene_renders_from_inside() -> None:
    cams = sample_cameras(SCENE_CAMERAS, 3, generator=torch.Generator().manual_seed(1))
    for s in SCENES:
        out = render(s, cams, 24, 24)
        assert out.rgb.shape == (3, 24, 24, 3) and torch.isfinite(out.depth).all()
        assert out.mask.mean() > 0.5, s.name  # mostly scene, some sky at most
        hit = out.mask > 0
        # nothing in the clear space around the camera; nothing beyond the scene box's corner
        assert out.depth[hit].min() > CLEAR_RADIUS - 0.5 - 1e-4
        assert out.depth[hit].max() < 2 * math.sqrt(3) * SCENE_BOUND
        n = out.normals[hit]
        torch.testing.assert_close(n.norm(dim=-1), torch.ones(n.shape[0]), atol=1e-4, rtol=0)


def test_parts_in_bounds_and_clear_space_empty() -> None:
    g = torch.Generator().manual_seed(0)
    r = CLEAR_RADIUS * torch.sqrt(torch.rand(2000, generator=g))
    a = 2 * math.pi * torch.rand(2000, generator=g)
    z = FLOOR_Z + 1e-3 + (1.2 - FLOOR_Z) * torch.rand(2000, generator=g)
    points = torch.stack([r * torch.cos(a), r * torch.sin(a), z], -1)
    for s in SCENES:
        for p in s.parts:
            pts = sample_surface(p, 32, torch.Generator().manual_seed(1))
            assert pts.abs().max() <= SCENE_BOUND + 1e-6, (s.name, p)
            R = torch.tensor(p.rotation).reshape(3, 3)
            local = (points - torch.tensor(p.position)) @ R  # R^T (x - c)
            assert not inside(p.kind, local, torch.tensor(p.size)).any(), (s.name, p)


@pytest.mark.parametrize("scene, sign", [("living_room", 1.0), ("bedroom", -1.0)])
def test_depth_is_the_distance_to_the_wall(scene: str, sign: float) -> None:
    s = get_scene(scene)
    # at the centre, eye height, looking at the wall x = sign ROOM_HALF (a camera at azimuth
    # 180 looks towards +x, one at azimuth 0 towards -x)
    az = 180.0 if sign > 0 else 0.0
    cams = cameras_from_spherical(0.0, az, 1e-3, 40.0, config=SCENE_CAMERAS)
    out = render(s, cams, 33, 33)
    origins, dirs = get_rays(cams, 33, 33)
    t_wall = (sign * ROOM_HALF - origins[..., 0]) / dirs[..., 0]  # to the plane x = ±ROOM_HALF
    t_floor = (origins[..., 2] - FLOOR_Z) / (-dirs[..., 2]).clamp_min(1e-9)
    shell = torch.minimum(t_wall, t_floor)
    # nothing lies beyond the shell; the middle of the wall is bare: exact depth, normal, colour
    assert (out.depth <= shell + 1e-4).all()
    mid = (slice(None), slice(12, 21), slice(12, 21))
    torch.testing.assert_close(out.depth[mid], t_wall[mid], atol=1e-5, rtol=1e-6)
    normal = torch.tensor([-sign, 0.0, 0.0]).expand_as(out.normals[mid])
    torch.testing.assert_close(out.normals[mid], normal)
    wall = torch.tensor(s.walls[0 if sign > 0 else 1]).expand_as(out.rgb[mid])
    torch.testing.assert_close(out.rgb[mid], shade(normal, wall))


def test_depth_is_the_distance_to_the_floor() -> None:
    s = get_scene("garden")
    # looking down at 40 degrees from 0.5 above the floor, towards the open sand-free middle
    cams = cameras_from_spherical(40.0, 180.0, 1e-3, 20.0, config=SCENE_CAMERAS)
    out = render(s, cams, 16, 16)
    origins, dirs = get_rays(cams, 16, 16)
    t_floor = (origins[..., 2] - FLOOR_Z) / (-dirs[..., 2])
    torch.testing.assert_close(out.depth, t_floor, atol=1e-5, rtol=1e-6)
    assert torch.allclose(out.normals[..., 2], torch.ones(1, 16, 16))


def test_fast_renderer_matches_reference_on_scenes() -> None:
    cams = sample_cameras(SCENE_CAMERAS, 3, generator=torch.Generator().manual_seed(2))
    idx = torch.arange(3) % len(SCENES)
    for shift in (0, 3):
        a = render_objects(SCENES, idx + shift, cams, 24, 24)
        b = render_objects(SCENES, idx + shift, cams, 24, 24, reference=True)
        for k in ("rgb", "depth", "normals", "mask"):
            assert torch.equal(getattr(a, k), getattr(b, k)), k


@pytest.mark.parametrize("part", [
    box((0.3, 0.2, 0.5), (0.5, 0.5, 0.5), (0.1, 0.2, 0.3), rotation_euler(20.0, 35.0, 10.0)),
    ellipsoid((0.3, 0.1, 0.2), (0.5, 0.5, 0.5), (0.0, 0.0, 0.1), rotation_euler(50.0, 0.0, 30.0)),
    frustum(0.3, 0.1, 0.4, (0.5, 0.5, 0.5), axis=(0.4, 0.2, 1.0)),
    frustum(0.1, 0.3, 0.4, (0.5, 0.5, 0.5), axis=(0.4, 0.2, 1.0)),
    cone(0.2, 0.5, (0.5, 0.5, 0.5), axis=(0.0, 0.0, -1.0)),
    torus(0.3, 0.05, (0.5, 0.5, 0.5), axis=(1.0, 0.3, 0.5)),
])
def test_part_bottom_is_the_lowest_surface_point(part) -> None:
    pts = sample_surface(part, 20000, torch.Generator().manual_seed(0))
    low = float(pts[:, 2].min())
    assert part_bottom(part) <= low + 1e-6
    assert low - part_bottom(part) < 0.01


def test_place_stands_on_the_floor_and_turns() -> None:
    parts = place("chair", (1.0, -0.5), 0.8, yaw=90.0)
    assert min(part_bottom(p) for p in parts) == pytest.approx(FLOOR_Z, abs=1e-9)
    # the chair's back (local -x) turns to -y under a 90-degree yaw
    back = max(parts, key=lambda p: p.size[2])  # the tallest box is the back
    assert back.position[1] < -0.5 and back.position[0] == pytest.approx(1.0, abs=1e-6)


def test_scene_views_captioned_without_suffix() -> None:
    b = sample_views(4, objects=SCENES, camera_config=SCENE_CAMERAS, height=16, width=16,
                     generator=torch.Generator().manual_seed(0))
    assert b.captions == [SCENES[i].prompt for i in b.object_index.tolist()]
    assert b.images.shape == (4, 3, 16, 16)


@pytest.mark.cuda
def test_scenes_cpu_and_cuda_agree() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cams = eval_cameras(4, elevation=10.0, config=SCENE_CAMERAS)
    worst, flips = 0.0, 0
    for s in SCENES:
        a = render(s, cams, 48, 48)
        b = render(s, cams.to("cuda"), 48, 48).to("cpu")
        both = (a.mask > 0) & (b.mask > 0)
        flips += int((a.mask != b.mask).sum())
        for x, y in ((a.depth, b.depth), (a.normals, b.normals), (a.rgb, b.rgb)):
            worst = max(worst, float((x - y)[both].abs().max()))
    assert worst < 1e-4
    assert flips <= 3


def test_prior_training_data_mixes_objects_and_scenes(tmp_path) -> None:
    from sdlib.priors._train import SCENE_FRACTION, default_prompts, load_or_render

    prompts = default_prompts()
    assert prompts == [o.prompt for o in OBJECTS] + list(SCENE_PROMPTS)
    cache = tmp_path / "views.pt"
    data = load_or_render(32, 0, "cpu", 16, str(cache), None)
    is_scene = data.object_index >= len(OBJECTS)
    assert int(is_scene.sum()) == round(32 * SCENE_FRACTION)
    for i, cap, s in zip(data.object_index.tolist(), data.captions, is_scene.tolist()):
        # scenes: the prompt alone; objects: "<prompt>, <view suffix>"
        assert cap == prompts[i] if s else cap.startswith(prompts[i] + ", ")
    # a cache written by another data version is rendered again, not reused
    blob = torch.load(cache, weights_only=False)
    blob["version"] = "objects-only"
    torch.save(blob, cache)
    again = load_or_render(32, 0, "cpu", 16, str(cache), None)
    assert torch.load(cache, weights_only=False)["version"] != "objects-only"
    assert again.captions == data.captions
