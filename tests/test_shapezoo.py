"""ShapeZoo objects, exact renderer and dataset (issue 3)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sdlib.cameras import SHAPEZOO_CAMERAS, VIEW_SUFFIXES, Cameras, cameras_from_spherical, get_rays
from sdlib.shapezoo import (
    MAX_RADIUS,
    OBJECTS,
    PROMPTS,
    UnknownPromptError,
    get_object,
    render,
    render_objects,
    sample_object_surface,
    sample_views,
    write_dataset,
)
from sdlib.shapezoo.primitives import intersect

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _cams(el, az, device="cpu") -> Cameras:
    return cameras_from_spherical(torch.tensor(el, dtype=torch.float32),
                                  torch.tensor(az, dtype=torch.float32), 1.75, 55.0,
                                  config=SHAPEZOO_CAMERAS, device=device)


def test_object_list() -> None:
    assert len(OBJECTS) >= 24
    assert sum(o.has_front for o in OBJECTS) >= 8
    assert len({o.name for o in OBJECTS}) == len(OBJECTS)
    assert len(set(PROMPTS)) == len(OBJECTS)
    for o in OBJECTS:
        assert o.prompt.split()[0] in ("a", "an"), o.prompt
        assert o.parts


def test_objects_inside_max_radius() -> None:
    signs = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    for o in OBJECTS:
        pts = [sample_object_surface(o, 600)]
        for p in o.parts:  # box corners exactly
            if p.kind == "box":
                rot = torch.tensor(p.rotation).reshape(3, 3)
                pts.append((signs * torch.tensor(p.size)) @ rot.T + torch.tensor(p.position))
        assert float(torch.cat(pts).norm(dim=-1).max()) <= MAX_RADIUS, o.name


def test_get_object_and_unknown_prompt() -> None:
    assert get_object("a red ball").name == "ball"
    assert get_object("  A Red   BALL ").name == "ball"
    assert get_object("snowman").prompt.startswith("a snowman")
    assert get_object("a red ball, front view").name == "ball"
    with pytest.raises(KeyError):
        get_object("a purple elephant")
    with pytest.raises(ValueError) as info:
        get_object("a purple elephant")
    assert "a red ball" in str(info.value) and "a purple elephant" in str(info.value)
    assert isinstance(info.value, UnknownPromptError)


def test_sphere_depth_and_normals_exact() -> None:
    cams = _cams([0.0, 30.0, -10.0, 45.0], [0.0, 100.0, -160.0, 33.0])
    out = render("a red ball", cams, 96, 96)
    o, d = get_rays(cams, 96, 96)
    o, d = o.double(), d.double()
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - 0.25)
    t = -b - torch.sqrt(disc.clamp_min(0))
    hit = disc > 0
    assert int((hit != (out.mask > 0)).sum()) == 0
    assert float((out.depth.double() - t)[hit].abs().max()) < 1e-4
    n_true = (o + t[..., None] * d) / 0.5
    assert float((out.normals.double() - n_true)[hit].abs().max()) < 1e-3
    assert float((out.normals.norm(dim=-1)[hit] - 1).abs().max()) < 1e-5
    assert float(out.depth[~hit].abs().max()) == 0.0
    assert float(out.normals[~hit].abs().max()) == 0.0


def test_box_centre_pixel_hand_computed() -> None:
    # the central ray of a 5x5 image at azimuth 0 travels along -x and meets the cube's
    # face x = 0.35 at distance 1.75 - 0.35 = 1.4, with normal +x
    out = render("a blue cube", _cams([0.0], [0.0]), 5, 5)
    assert out.depth[0, 2, 2].item() == pytest.approx(1.4, abs=1e-6)
    assert out.normals[0, 2, 2].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)


@pytest.mark.parametrize(
    "kind,size,origin,direction,expected",
    [
        ("frustum", (0.45, 0.0, 0.5), (0.0, 0.0, 5.0), (0.0, 0.0, -1.0), 4.5),  # cone apex
        ("frustum", (0.45, 0.0, 0.5), (5.0, 0.0, 0.0), (-1.0, 0.0, 0.0), 5.0 - 0.225),
        ("frustum", (0.3, 0.3, 0.5), (0.1, 0.0, -5.0), (0.0, 0.0, 1.0), 4.5),  # bottom cap
        ("torus", (0.4, 0.18, 0.0), (5.0, 0.0, 0.0), (-1.0, 0.0, 0.0), 5.0 - 0.58),
        ("torus", (0.4, 0.18, 0.0), (0.4, 0.0, 5.0), (0.0, 0.0, -1.0), 5.0 - 0.18),
        ("torus", (0.4, 0.18, 0.0), (0.0, 0.0, 5.0), (0.0, 0.0, -1.0), math.inf),  # the hole
        ("ellipsoid", (0.2, 0.3, 0.4), (0.0, 5.0, 0.0), (0.0, -1.0, 0.0), 4.7),
        ("box", (0.1, 0.2, 0.3), (0.0, 0.0, 5.0), (0.0, 0.0, -1.0), 4.7),
    ],
)
def test_primitive_hand_computed(kind, size, origin, direction, expected) -> None:
    t = intersect(kind, torch.tensor([origin]), torch.tensor([direction]), torch.tensor([size]))
    assert t.item() == pytest.approx(expected, abs=1e-5)


def test_torus_depth_against_dense_float64_search() -> None:
    cams = _cams([10.0, 40.0], [20.0, -70.0])
    out = render("a pink donut", cams, 32, 32)
    o, d = get_rays(cams, 32, 32)
    o, d = o.double().reshape(-1, 3), d.double().reshape(-1, 3)
    ts = torch.linspace(0.9, 2.6, 3401, dtype=torch.float64)
    p = o[:, None] + ts[None, :, None] * d[:, None]
    rho = torch.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2)
    f = torch.sqrt((rho - 0.4) ** 2 + p[..., 2] ** 2) - 0.18
    neg = f < 0
    hit = neg.any(-1)
    first = neg.float().argmax(-1)
    lo, hi = ts[(first - 1).clamp_min(0)], ts[first]
    for _ in range(40):  # bisection on the bracket
        mid = 0.5 * (lo + hi)
        q = o + mid[:, None] * d
        r = torch.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2)
        inside = torch.sqrt((r - 0.4) ** 2 + q[:, 2] ** 2) - 0.18 < 0
        hi, lo = torch.where(inside, mid, hi), torch.where(inside, lo, mid)
    mask = out.mask.reshape(-1) > 0
    assert int((mask != hit).sum()) <= 2  # grazing silhouette rays at most
    both = mask & hit
    assert float((out.depth.reshape(-1).double() - hi)[both].abs().max()) < 1e-4


def test_every_object_renders_sanely() -> None:
    cams = _cams([15.0, 15.0, 50.0], [0.0, 135.0, -90.0])
    for obj in OBJECTS:
        out = render(obj, cams, 32, 32)
        m = out.mask > 0
        assert m.any(), obj.name
        assert float(out.depth[m].min()) >= 1.75 - MAX_RADIUS - 1e-4
        assert float(out.depth[m].max()) <= 1.75 + MAX_RADIUS
        assert torch.allclose(out.normals.norm(dim=-1)[m], torch.ones(()), atol=1e-4)
        assert out.rgb.min() >= 0 and out.rgb.max() <= 1
        # normals face the camera
        _, d = get_rays(cams, 32, 32)
        assert float((out.normals * d).sum(-1)[m].max()) < 1e-3, obj.name


def test_batched_render_matches_single_object_render() -> None:
    cams = _cams([15.0, 20.0, 5.0, 30.0], [0.0, 45.0, 180.0, -60.0])
    idx = torch.tensor([0, 5, 16, 17])
    batched = render_objects(OBJECTS, idx, cams, 24, 24, background=(0.0, 0.0, 0.0))
    for k, i in enumerate(idx.tolist()):
        single = render(OBJECTS[i], cams[k], 24, 24, background=(0.0, 0.0, 0.0))
        torch.testing.assert_close(batched.rgb[k], single.rgb[0])
        torch.testing.assert_close(batched.depth[k], single.depth[0])


def test_front_objects_differ_front_and_back() -> None:
    cams = _cams([10.0, 10.0], [0.0, 180.0])
    for obj in OBJECTS:
        if obj.has_front:
            out = render(obj, cams, 48, 48)
            flipped = out.rgb[1].flip(1)  # mirror the back view to compare silhouettes fairly
            assert float((out.rgb[0] - flipped).abs().mean()) > 0.005, obj.name


def test_house_door_is_on_the_front() -> None:
    out = render("house", _cams([5.0, 5.0], [0.0, 180.0]), 64, 64)
    door = torch.tensor([0.45, 0.26, 0.12])  # brown albedo, shading only darkens it
    def has_door(rgb):
        ratio = rgb / door
        return bool(((ratio - ratio.mean(-1, keepdim=True)).abs().amax(-1) < 0.02).any())
    assert has_door(out.rgb[0]) and not has_door(out.rgb[1])


def test_background_parameter() -> None:
    out = render("a red ball", _cams([0.0], [0.0]), 16, 16, background=(0.0, 0.5, 1.0))
    assert out.rgb[0, 0, 0].tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_sample_views() -> None:
    g = torch.Generator().manual_seed(0)
    b = sample_views(12, generator=g, height=16, width=20)
    assert b.images.shape == (12, 3, 16, 20) and b.depth.shape == (12, 1, 16, 20)
    assert b.normals.shape == (12, 3, 16, 20) and b.mask.shape == (12, 1, 16, 20)
    assert b.object_index.dtype == torch.long and b.view_index.dtype == torch.long
    for i in range(12):
        obj = OBJECTS[int(b.object_index[i])]
        assert b.captions[i] == f"{obj.prompt}, {VIEW_SUFFIXES[int(b.view_index[i])]}"
    again = sample_views(12, generator=torch.Generator().manual_seed(0), height=16, width=20)
    assert torch.equal(again.images, b.images) and again.captions == b.captions
    sub = sample_views(4, objects=["snowman", "a red ball"], height=8, width=8)
    assert set(sub.object_index.tolist()) <= {0, 1}
    assert all(c.startswith(("a snowman", "a red ball")) for c in sub.captions)


def test_write_dataset(tmp_path) -> None:
    folder = write_dataset(tmp_path / "zoo", 2, objects=["ball", "house"], height=8, width=8)
    rows = json.loads((folder / "index.json").read_text())
    assert len(rows) == 4 and all((folder / r["file"]).exists() for r in rows)
    import numpy as np

    arrays = np.load(folder / "arrays.npz")
    assert arrays["depth"].shape == (4, 8, 8) and arrays["object_index"].tolist() == [0, 0, 1, 1]
    assert (folder / "index.csv").read_text().count("\n") == 5


@cuda
@pytest.mark.cuda
def test_cpu_and_cuda_agree() -> None:
    cams = _cams([15.0, 40.0, -5.0], [10.0, 120.0, -150.0])
    worst, flips = 0.0, 0
    for obj in OBJECTS:
        a = render(obj, cams, 48, 48)
        b = render(obj, cams.to("cuda"), 48, 48).to("cpu")
        both = (a.mask > 0) & (b.mask > 0)
        flips += int((a.mask != b.mask).sum())
        for x, y in ((a.depth, b.depth), (a.normals, b.normals), (a.rgb, b.rgb)):
            worst = max(worst, float((x - y)[both].abs().max()))
    assert worst < 1e-4
    assert flips <= 3


@cuda
@pytest.mark.cuda
def test_sample_views_cuda() -> None:
    b = sample_views(256, generator=torch.Generator().manual_seed(0), device="cuda")
    assert b.images.is_cuda and b.images.shape == (256, 3, 64, 64)
    assert b.mask.sum() > 0


def test_fast_path_matches_reference() -> None:
    from sdlib.cameras import PAPER_CAMERAS, sample_cameras

    g = torch.Generator().manual_seed(5)
    n = len(OBJECTS)
    for config in (SHAPEZOO_CAMERAS, PAPER_CAMERAS):
        cams = sample_cameras(config, n, generator=g)
        idx = torch.arange(n)
        fast = render_objects(OBJECTS, idx, cams, 16, 16)
        ref = render_objects(OBJECTS, idx, cams, 16, 16, reference=True)
        torch.testing.assert_close(fast.mask, ref.mask, atol=0, rtol=0)
        torch.testing.assert_close(fast.depth, ref.depth, atol=0, rtol=0)
        torch.testing.assert_close(fast.normals, ref.normals)
        torch.testing.assert_close(fast.rgb, ref.rgb)
