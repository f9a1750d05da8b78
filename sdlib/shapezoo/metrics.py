"""Ground-truth metrics: how close a rendered or meshed result is to its prompt's true object.

Image metrics compare renders at the same cameras (by default :func:`~sdlib.cameras.eval_cameras`,
8 azimuths from the front at elevation 15 degrees); each is computed **per image** and then
averaged over images:

* :func:`mask_iou`: ``|P & T| / |P | T|`` of the binarised masks (1 when both are empty);
* :func:`depth_pearson`: Pearson correlation of the two depth maps over the pixels where
  **both** masks are set (true mask ∩ predicted mask), so it measures shape, not silhouette;
  images with fewer than 2 such pixels or a constant depth there are left out (NaN if all are);
  a NeRF's depth here is its expected termination depth ``sum w t / sum w``
  (:attr:`sdlib.nerf.RenderOutput.depth`), not the accumulated ``sum w t``, which shrinks
  with the opacity at semi-transparent pixels and would mix opacity into the correlation;
* :func:`psnr`: ``10 log10(max^2 / MSE)`` of the RGB over all pixels (background included);
  ``inf`` for identical images;
* :func:`color_error`: the colour error **inside the true mask**: mean CIE76 ``ΔE*ab``, the
  Euclidean distance in CIE L*a*b* (:func:`srgb_to_lab`: sRGB, D65 white) between the two
  images' pixels, and the mean absolute RGB error (per channel, in [0, 1]). Where the result
  misses part of the object the pixel shows its background, and that counts as a colour error
  too (IoU measures the silhouette alone). ΔE ≈ 2.3 is a just-noticeable difference; two
  saturated primaries are 80–260 apart (red–green 170).

The 3-D metric is the Chamfer distance between a mesh and the true surface
(:func:`mesh_chamfer`): ``n`` points sampled uniformly by area on the mesh and ``n`` on the true
object's surface (:func:`sample_object_surface`: uniform on every part by area, keeping only
points not strictly inside another part, i.e. exactly uniform on the union's boundary), then
:func:`chamfer_distance` ``= (mean_a min_b |a - b| + mean_b min_a |a - b|) / 2`` in object
units (Euclidean, not squared).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from sdlib.cameras import Cameras, eval_cameras
from sdlib.shapezoo.objects import ShapeObject, get_object
from sdlib.shapezoo.primitives import inside, sample_surface, surface_area
from sdlib.shapezoo.render import RenderResult, render

__all__ = [
    "mask_iou",
    "depth_pearson",
    "psnr",
    "srgb_to_lab",
    "color_error",
    "chamfer_distance",
    "sample_object_surface",
    "sample_mesh_surface",
    "mesh_chamfer",
    "evaluate",
]


def _flat(x: Tensor) -> Tensor:
    """``[B, ...]`` -> ``[B, P]`` (a single ``[H, W]`` image becomes ``[1, H*W]``)."""
    x = torch.as_tensor(x)
    if x.dim() == 2:
        x = x[None]
    return x.reshape(x.shape[0], -1).float()


def mask_iou(pred_mask: Tensor, true_mask: Tensor, threshold: float = 0.5) -> Tensor:
    """Mean over images of the IoU of ``pred_mask > threshold`` and ``true_mask > threshold``.

    Args:
        pred_mask, true_mask: ``[B, H, W]``, ``[B, 1, H, W]`` or ``[H, W]`` in [0, 1].

    Returns:
        Scalar tensor in [0, 1]; an image where both masks are empty scores 1.
    """
    p, t = _flat(pred_mask) > threshold, _flat(true_mask) > threshold
    inter = (p & t).sum(-1).float()
    union = (p | t).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), 1.0).mean()


def _centred_depths(pred_depth: Tensor, true_depth: Tensor, pred_mask: Tensor,
                    true_mask: Tensor, threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """Each image's depths minus their mean over ``pred ∩ true``, zero outside it: ``[B, P]``
    twice (float64), and the overlap's pixel count ``[B]``."""
    a, b = _flat(pred_depth).double(), _flat(true_depth).double()
    m = ((_flat(pred_mask) > threshold) & (_flat(true_mask) > threshold)).double()
    n = m.sum(-1)
    mean_a = (a * m).sum(-1) / n.clamp_min(1)
    mean_b = (b * m).sum(-1) / n.clamp_min(1)
    return (a - mean_a[:, None]) * m, (b - mean_b[:, None]) * m, n


def depth_pearson(pred_depth: Tensor, true_depth: Tensor, pred_mask: Tensor, true_mask: Tensor,
                  threshold: float = 0.5) -> Tensor:
    """Mean over images of the Pearson correlation of depths inside ``pred ∩ true`` masks.

    Args:
        pred_depth, true_depth: ``[B, H, W]`` (or ``[B, 1, H, W]``, ``[H, W]``).
        pred_mask, true_mask: same shapes, binarised at ``threshold``.

    Returns:
        Scalar tensor in [-1, 1]; NaN if no image has 2 or more overlapping pixels with
        non-constant depth.
    """
    da, db, n = _centred_depths(pred_depth, true_depth, pred_mask, true_mask, threshold)
    cov = (da * db).sum(-1)
    var = (da * da).sum(-1) * (db * db).sum(-1)
    ok = (n >= 2) & (var > 0)
    if not bool(ok.any()):
        return torch.tensor(math.nan)
    r = cov[ok] / torch.sqrt(var[ok])
    return r.mean().float()


def depth_spread(pred_depth: Tensor, true_depth: Tensor, pred_mask: Tensor, true_mask: Tensor,
                 threshold: float = 0.5) -> Tensor:
    """Mean over images of ``std(pred) / std(true)`` of the depths inside ``pred ∩ true`` masks.

    Pearson is blind to scale: a field whose depth barely varies (a shell at one distance)
    correlates with the truth through its small wobbles, and the sign of that correlation is
    luck. The spread says how much of the true depth's variation the result has: 1 for the
    truth, 0 for a constant depth.

    Args:
        pred_depth, true_depth: ``[B, H, W]`` (or ``[B, 1, H, W]``, ``[H, W]``).
        pred_mask, true_mask: same shapes, binarised at ``threshold``.

    Returns:
        Scalar tensor ≥ 0; NaN if no image has 2 or more overlapping pixels with non-constant
        true depth.
    """
    da, db, n = _centred_depths(pred_depth, true_depth, pred_mask, true_mask, threshold)
    var_a, var_b = (da * da).sum(-1), (db * db).sum(-1)
    ok = (n >= 2) & (var_b > 0)
    if not bool(ok.any()):
        return torch.tensor(math.nan)
    return torch.sqrt(var_a[ok] / var_b[ok]).mean().float()


def psnr(pred_rgb: Tensor, true_rgb: Tensor, max_value: float = 1.0) -> Tensor:
    """Mean over images of ``10 log10(max_value^2 / MSE)``; ``[B, ...]`` or one ``[H, W, 3]``.

    Any layout works as long as both inputs share it and the batch comes first; a single
    image ``[H, W, 3]`` is one image.
    """
    a, b = torch.as_tensor(pred_rgb).float(), torch.as_tensor(true_rgb).float()
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() == 3:
        a, b = a[None], b[None]
    mse = ((a - b) ** 2).reshape(a.shape[0], -1).mean(-1)
    return (10.0 * torch.log10(max_value**2 / mse)).mean()


_SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
"""Linear sRGB → CIE XYZ (IEC 61966-2-1, D65 white)."""
_D65_WHITE = (0.95047, 1.0, 1.08883)
"""The reference white ``X_n, Y_n, Z_n`` (D65, 2° observer)."""


def srgb_to_lab(rgb: Tensor) -> Tensor:
    """CIE L*a*b* of sRGB colours ``[..., 3]`` in [0, 1] (values outside are clamped).

    Steps (float64 inside, returned in the input's floating dtype):

    * linearise: ``c_lin = c / 12.92`` if ``c <= 0.04045``, else ``((c + 0.055) / 1.055)^2.4``;
    * ``XYZ = M c_lin`` with the sRGB D65 matrix;
    * ``f(t) = t^(1/3)`` if ``t > (6/29)^3``, else ``t / (3 (6/29)^2) + 4/29``;
    * ``L* = 116 f(Y/Y_n) − 16``, ``a* = 500 (f(X/X_n) − f(Y/Y_n))``,
      ``b* = 200 (f(Y/Y_n) − f(Z/Z_n))``.

    White is ``(100, 0, 0)``, sRGB red ``(53.24, 80.09, 67.20)``.
    """
    x = torch.as_tensor(rgb)
    if x.shape[-1] != 3:
        raise ValueError(f"srgb_to_lab: last dimension must be 3 (RGB), got {tuple(x.shape)}")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    c = x.double().clamp(0.0, 1.0)
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(_SRGB_TO_XYZ, dtype=torch.float64, device=c.device)
    xyz = lin @ m.T / torch.tensor(_D65_WHITE, dtype=torch.float64, device=c.device)
    delta = 6.0 / 29.0
    f = torch.where(xyz > delta**3, xyz.clamp_min(delta**3) ** (1.0 / 3.0),
                    xyz / (3 * delta**2) + 4.0 / 29.0)
    lab = torch.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                       200.0 * (f[..., 1] - f[..., 2])], dim=-1)
    return lab.to(dtype)


def color_error(pred_rgb: Tensor, true_rgb: Tensor, true_mask: Tensor,
                threshold: float = 0.5, pred_mask: Tensor | None = None) -> dict[str, float]:
    """Mean colour error inside the true mask, per image, then averaged over images.

    With ``pred_mask`` (the render's opacity) the error is also split by where it comes from:

    * ``color_delta_e_overlap``: mean ΔE over pixels inside both masks (colour where the
      geometry agrees; the true-mask mean also counts pixels the render leaves uncovered);
    * ``color_delta_e_of_mean``: ΔE between the mean Lab colours of render and truth over those
      pixels (a global colour shift; the rest of the overlap error is detail, e.g. a bear's
      nose or a mushroom's spots);
    * ``uncovered_fraction``: the share of true-mask pixels outside the render's mask.

    Args:
        pred_rgb, true_rgb: ``[B, H, W, 3]`` (or one ``[H, W, 3]``) sRGB in [0, 1].
        true_mask: ``[B, H, W]`` (or ``[H, W]``), binarised at ``threshold``.
        threshold: the masks' binarisation threshold.
        pred_mask: optional ``[B, H, W]`` (or ``[H, W]``) render opacity.

    Returns:
        ``{"color_delta_e": mean CIE76 ΔE*ab, "color_rgb_mae": mean |Δ| per channel}`` (+ the
        three above with ``pred_mask``); images with an empty (true, or overlap) mask are left
        out (NaN if all are).
    """
    a, b = torch.as_tensor(pred_rgb), torch.as_tensor(true_rgb)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(f"color_error: pred_rgb {tuple(a.shape)} and true_rgb "
                         f"{tuple(b.shape)} must both be [B, H, W, 3]")
    if a.dim() == 3:
        a, b = a[None], b[None]
    masks = {"true_mask": true_mask} | ({} if pred_mask is None else {"pred_mask": pred_mask})
    flat = {}
    for name, mask in masks.items():
        flat[name] = _flat(mask) > threshold  # [B, P]
        if flat[name].shape != a.shape[:1] + (a.shape[1] * a.shape[2],):
            raise ValueError(f"color_error: {name} {tuple(torch.as_tensor(mask).shape)} "
                             f"does not match the images {tuple(a.shape[:3])}")
    m = flat["true_mask"]
    a = a.reshape(a.shape[0], -1, 3).double()
    b = b.reshape(b.shape[0], -1, 3).double()
    lab_a, lab_b = srgb_to_lab(a), srgb_to_lab(b)
    delta_e = (lab_a - lab_b).norm(dim=-1)  # [B, P]
    mae = (a - b).abs().mean(-1)
    nan = {"color_delta_e": math.nan, "color_rgb_mae": math.nan}
    if pred_mask is not None:
        nan |= {"color_delta_e_overlap": math.nan, "color_delta_e_of_mean": math.nan,
                "uncovered_fraction": math.nan}
    n = m.sum(-1)
    ok = n > 0
    if not bool(ok.any()):
        return nan
    w = m.double()
    out = {"color_delta_e": float(((delta_e * w).sum(-1)[ok] / n[ok]).mean()),
           "color_rgb_mae": float(((mae * w).sum(-1)[ok] / n[ok]).mean())}
    if pred_mask is None:
        return out
    both = (m & flat["pred_mask"]).double()  # [B, P]
    nb = both.sum(-1)
    out["uncovered_fraction"] = float((1.0 - nb[ok] / n[ok]).mean())
    ok2 = nb > 0
    if not bool(ok2.any()):
        return {**out, "color_delta_e_overlap": math.nan, "color_delta_e_of_mean": math.nan}
    out["color_delta_e_overlap"] = float(((delta_e * both).sum(-1)[ok2] / nb[ok2]).mean())
    mean_a = (lab_a * both[..., None]).sum(1)[ok2] / nb[ok2, None]  # [B', 3]
    mean_b = (lab_b * both[..., None]).sum(1)[ok2] / nb[ok2, None]
    out["color_delta_e_of_mean"] = float((mean_a - mean_b).norm(dim=-1).mean())
    return out


def chamfer_distance(points_a: Tensor, points_b: Tensor, chunk: int = 4096) -> Tensor:
    """Symmetric Chamfer distance ``(mean_a min_b |a-b| + mean_b min_a |a-b|) / 2``.

    Args:
        points_a: ``[N, 3]``; points_b: ``[M, 3]``.

    Returns:
        Scalar tensor (Euclidean distance, object units); 0 for identical sets.
    """
    a, b = torch.as_tensor(points_a).float(), torch.as_tensor(points_b).float()

    def one_way(x: Tensor, y: Tensor) -> Tensor:
        mins = [torch.cdist(x[i:i + chunk], y, compute_mode="donot_use_mm_for_euclid_dist")
                .amin(-1) for i in range(0, x.shape[0], chunk)]
        return torch.cat(mins).mean()

    return 0.5 * (one_way(a, b) + one_way(b, a))


def sample_object_surface(obj: ShapeObject | str, n: int, seed: int = 0) -> Tensor:
    """``[n, 3]`` points uniform by area on the true object's surface (the union's boundary).

    Every part is sampled uniformly by area (:func:`~sdlib.shapezoo.primitives.sample_surface`),
    parts in proportion to their areas, and points strictly inside another part are dropped;
    rounds repeat until ``n`` points remain, of which a random ``n`` are returned.
    """
    obj = get_object(obj)
    g = torch.Generator().manual_seed(seed)
    areas = torch.tensor([surface_area(p) for p in obj.parts], dtype=torch.float64)
    frames = [(torch.tensor(p.rotation, dtype=torch.float64).reshape(3, 3),
               torch.tensor(p.position, dtype=torch.float64),
               torch.tensor(p.size, dtype=torch.float64)) for p in obj.parts]
    kept: list[Tensor] = []
    total = 0
    while total < n:
        m = 2 * (n - total) + 64
        counts = torch.bincount(torch.multinomial(areas, m, replacement=True, generator=g),
                                minlength=len(obj.parts))
        for i, part in enumerate(obj.parts):
            if counts[i] == 0:
                continue
            pts = sample_surface(part, int(counts[i]), g)
            keep = torch.ones(pts.shape[0], dtype=torch.bool)
            for j, other in enumerate(obj.parts):
                if j != i:
                    rot, pos, size = frames[j]
                    keep &= ~inside(other.kind, (pts - pos) @ rot, size, margin=1e-9)
            kept.append(pts[keep])
            total += int(keep.sum())
    pts = torch.cat(kept)
    return pts[torch.randperm(pts.shape[0], generator=g)[:n]].float()


def _mesh_arrays(mesh: Any) -> tuple[Tensor, Tensor]:
    if isinstance(mesh, (tuple, list)):
        vertices, faces = mesh
    else:  # trimesh.Trimesh or anything with .vertices and .faces
        vertices, faces = mesh.vertices, mesh.faces
    return (torch.as_tensor(vertices, dtype=torch.float64),
            torch.as_tensor(faces, dtype=torch.long))


def sample_mesh_surface(mesh: Any, n: int, seed: int = 0) -> Tensor:
    """``[n, 3]`` points uniform by area on a triangle mesh.

    Args:
        mesh: a ``trimesh.Trimesh`` or a ``(vertices [V, 3], faces [F, 3])`` pair.
        n: number of points.
        seed: seed of the draw.
    """
    v, f = _mesh_arrays(mesh)
    if f.numel() == 0:
        raise ValueError("sample_mesh_surface: the mesh has no faces")
    g = torch.Generator().manual_seed(seed)
    tri = v[f]  # [F, 3, 3]
    area = 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    if float(area.sum()) <= 0:
        raise ValueError("sample_mesh_surface: the mesh has zero area")
    face = torch.multinomial(area, n, replacement=True, generator=g)
    u, w = torch.rand(2, n, generator=g, dtype=torch.float64)
    su = torch.sqrt(u)
    b0, b1, b2 = 1 - su, su * (1 - w), su * w
    t = tri[face]
    return (b0[:, None] * t[:, 0] + b1[:, None] * t[:, 1] + b2[:, None] * t[:, 2]).float()


def mesh_chamfer(mesh: Any, obj: ShapeObject | str, n_points: int = 10_000, seed: int = 0
                 ) -> float:
    """Chamfer distance between a mesh and the true surface of ``obj`` (its prompt or name).

    ``n_points`` are sampled on each (seeds ``seed`` and ``seed + 1``); see
    :func:`chamfer_distance`. Sampling noise gives a floor of about the point spacing
    (~0.005 for 10k points on a unit-sized object).
    """
    a = sample_mesh_surface(mesh, n_points, seed)
    b = sample_object_surface(obj, n_points, seed + 1)
    return float(chamfer_distance(a, b))


RenderFn = Callable[[Cameras, int, int], RenderResult]


def evaluate(
    result: RenderResult | RenderFn,
    prompt: ShapeObject | str,
    *,
    n_views: int = 8,
    elevation: float = 15.0,
    height: int = 64,
    width: int = 64,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    mesh: Any = None,
    n_points: int = 10_000,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Scores a result against its prompt's true object at :func:`~sdlib.cameras.eval_cameras`.

    Args:
        result: a :class:`RenderResult` rendered at ``eval_cameras(n_views, elevation)`` (in
            that order, at ``height x width``), or a function ``(cameras, height, width) ->
            RenderResult`` that renders it.
        prompt: the prompt (or name, or object) whose true object is the reference.
        n_views, elevation: the evaluation cameras.
        height, width: image size.
        background: background of the true renders (use the one the result was rendered on).
        mesh: optionally a mesh (trimesh or ``(vertices, faces)``) to add ``"chamfer"``.
        n_points: points per surface for the Chamfer distance.
        device: device of the cameras and reference renders.

    Returns:
        ``{"mask_iou", "depth_pearson", "psnr", "color_delta_e", "color_rgb_mae",
        "color_delta_e_overlap", "color_delta_e_of_mean", "uncovered_fraction", "n_views"}``
        (:func:`color_error` with the render's mask; + ``"chamfer"`` with a mesh).
    """
    obj = get_object(prompt)
    cams = eval_cameras(n_views, elevation, device=device)
    if callable(result) and not isinstance(result, RenderResult):
        result = result(cams, height, width)
    if result.mask.shape != (n_views, height, width):
        raise ValueError(
            f"evaluate: result mask has shape {tuple(result.mask.shape)}; expected "
            f"{(n_views, height, width)} (renders at eval_cameras({n_views}, {elevation}))"
        )
    true = render(obj, cams, height, width, background)
    result = result.to(true.mask.device)
    scores = {
        "mask_iou": float(mask_iou(result.mask, true.mask)),
        "depth_pearson": float(depth_pearson(result.depth, true.depth, result.mask, true.mask)),
        "psnr": float(psnr(result.rgb, true.rgb)),
        **color_error(result.rgb, true.rgb, true.mask, pred_mask=result.mask),
        "n_views": n_views,
    }
    if mesh is not None:
        scores["chamfer"] = mesh_chamfer(mesh, obj, n_points)
    return scores
