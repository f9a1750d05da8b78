"""Volume rendering of a :class:`~sdlib.nerf.field.RadianceField` for a batch of cameras.

Along a ray ``r(t) = o + t d`` (unit ``d``) cut into intervals ``[t_i, t_{i+1}]`` of length
``delta_i``, with densities ``sigma_i`` at the interval midpoints (NeRF, Mildenhall et al. 2020,
Eq. 3)::

    alpha_i = 1 - exp(-sigma_i delta_i)
    T_i     = prod_{j<i} (1 - alpha_j)          (transmittance)
    w_i     = T_i alpha_i
    C       = sum_i w_i c_i + (1 - sum_i w_i) c_background
    opacity = sum_i w_i
    depth_sum = sum_i w_i t_mid_i               (accumulated, distance along the unit ray)
    depth   = depth_sum / opacity               (expected termination depth; 0 where empty)
    normal  = sum_i w_i n_i                     (opacity-weighted, not re-normalised)

``depth`` is the expected distance at which a ray terminates *given that it terminates* inside
the box: at a semi-transparent pixel (opacity 0.6, say) it is still the distance to the
material the pixel sees, where ``depth_sum`` would be 0.6 times it and ``1 / depth_sum`` would
inflate inverse depth by 1 / 0.6. Depth consumers (SSD's depth baseline, the ground-truth depth
metric, the depth panel of the turntable) use ``depth``; ``depth_sum`` is kept for anyone who
needs the raw accumulation (e.g. compositing depth over a background at distance 0).

Two samplers feed the same nerfacc rendering functions:

* ``"dense"`` (CPU, and on CUDA when asked): ``n_samples`` stratified (or midpoint) samples per
  ray between the ray's entry and exit of the box ``[-bound, bound]^3``, rendered with nerfacc's
  batched ``render_weight_from_density`` and ``accumulate_along_rays``.
* ``"occgrid"`` (CUDA): nerfacc's ``OccGridEstimator`` marches with step ``render_step_size``,
  skips empty cells and terminates early (transmittance below ``early_stop_eps``); rendering
  uses the packed functions. Keep the grid up to date with :func:`update_occupancy` every
  training step (it updates every ``update_every`` steps; **call it once before the first
  render**: a fresh grid is empty and renders nothing).

>>> from sdlib.cameras import eval_cameras
>>> from sdlib.nerf.field import RadianceField, FieldConfig
>>> from sdlib.nerf.hashgrid import HashGridConfig
>>> field = RadianceField(FieldConfig(grid=HashGridConfig(n_levels=2, log2_table_size=10)))
>>> out = render_cameras(field, eval_cameras(2), 8, 8, config=RenderConfig(n_samples=16))
>>> out.rgb.shape, out.depth.shape
(torch.Size([2, 8, 8, 3]), torch.Size([2, 8, 8]))
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sdlib.cameras import Cameras, get_rays
from sdlib.nerf.field import RadianceField

__all__ = [
    "RenderConfig",
    "RenderOutput",
    "RayOutput",
    "render_cameras",
    "render_rays",
    "ray_box_intersect",
    "expected_depth",
    "EMPTY_OPACITY",
    "make_estimator",
    "update_occupancy",
]


@dataclass(frozen=True)
class RenderConfig:
    """Settings of the volume renderer."""

    sampler: Literal["auto", "dense", "occgrid"] = "auto"
    """``"auto"``: occgrid when an estimator is given and the rays are on CUDA, else dense."""
    n_samples: int = 64
    """Samples per ray of the dense sampler."""
    stratified: bool = True
    """Jitter the samples within their intervals (training); False: fixed midpoints."""
    render_step_size: float = 2.0 * math.sqrt(3.0) / 512
    """Marching step of the occupancy-grid sampler, world units (threestudio: 512 per diagonal)."""
    early_stop_eps: float = 1e-4
    """Occgrid: stop a ray once its transmittance falls below this."""
    alpha_thre: float = 0.0
    """Occgrid: skip samples whose alpha is below this."""
    prune_with_density: bool = True
    """Occgrid: evaluate the density (no grad) while marching, for early termination and
    ``alpha_thre``; False keeps every sample in occupied cells (no extra field pass)."""
    grid_resolution: int = 64
    """Cells per side of the occupancy grid."""
    occ_threshold: float = 0.01
    """A grid cell is occupied when ``sigma * render_step_size`` exceeds this."""
    update_every: int = 16
    """Occupancy-grid update interval, in training steps."""
    compute_normals: bool = True
    """Render normals (costs six extra density evaluations per sample with finite differences)."""
    chunk: int = 32768
    """Rays rendered at once (bounds memory); gradients flow through all chunks."""


@dataclass
class RayOutput:
    """Per-ray results: ``rgb [R, 3]``, ``depth [R]``, ``opacity [R]``, ``normals [R, 3]``,
    ``depth_sum [R]`` (see :class:`RenderOutput` for their definitions)."""

    rgb: Tensor
    depth: Tensor
    opacity: Tensor
    normals: Tensor | None
    n_samples: int
    """Total samples evaluated (for logging)."""
    depth_sum: Tensor | None = None
    """``[R]`` accumulated ``sum_i w_i t_i`` (not divided by the opacity)."""


@dataclass
class RenderOutput:
    """Per-pixel renders of ``B`` cameras at ``H x W``."""

    rgb: Tensor
    """``[B, H, W, 3]`` colour, background composited: ``rgb + (1 - opacity) bg``."""
    depth: Tensor
    """``[B, H, W]`` expected termination depth along the unit ray,
    ``sum_i w_i t_i / sum_i w_i`` (0 where the opacity is at most ``EMPTY_OPACITY``)."""
    opacity: Tensor
    """``[B, H, W]`` accumulated weight ``sum_i w_i`` in [0, 1]."""
    normals: Tensor | None
    """``[B, H, W, 3]`` opacity-weighted normals ``sum_i w_i n_i`` (None if not computed)."""
    depth_sum: Tensor | None = None
    """``[B, H, W]`` accumulated ``sum_i w_i t_i`` = ``depth * opacity`` (not normalised)."""

    def select(self, index: Tensor, detach: bool = False) -> RenderOutput:
        """The renders at batch positions ``index`` ``[B']`` (repeats allowed), optionally
        detached."""
        def pick(v: Tensor | None) -> Tensor | None:
            if v is None:
                return None
            return (v.detach() if detach else v)[index]

        return RenderOutput(**{f.name: pick(getattr(self, f.name))
                               for f in dataclasses.fields(self)})


EMPTY_OPACITY = 1e-6
"""Pixels with opacity at or below this get ``depth = 0`` (nothing to divide by)."""


def expected_depth(depth_sum: Tensor, opacity: Tensor) -> Tensor:
    """Expected termination depth ``sum_i w_i t_i / sum_i w_i`` (0 where the ray is empty).

    Args:
        depth_sum: accumulated ``sum_i w_i t_i``, any shape.
        opacity: ``sum_i w_i``, same shape; at or below ``EMPTY_OPACITY`` the depth is 0.

    Returns:
        Same shape; differentiable (the division is guarded, so empty pixels give zero gradient).
    """
    full = opacity > EMPTY_OPACITY
    return torch.where(full, depth_sum / opacity.clamp_min(EMPTY_OPACITY),
                       torch.zeros_like(depth_sum))


def ray_box_intersect(
    origins: Tensor, directions: Tensor, bound: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Slab intersection of rays with the box ``[-bound, bound]^3``.

    Args:
        origins: ``[R, 3]``.
        directions: ``[R, 3]`` (need not be unit; ``t`` is in units of ``|d|``).

    Returns:
        ``t_near [R]`` (clamped to >= 0), ``t_far [R]`` and ``hit [R]`` (bool).
    """
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    inv = 1.0 / safe
    t0 = (-bound - origins) * inv
    t1 = (bound - origins) * inv
    t_near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=0.0)
    t_far = torch.maximum(t0, t1).amin(dim=-1)
    hit = t_far > t_near
    t_far = torch.where(hit, t_far, t_near)
    return t_near, t_far, hit


def make_estimator(field: RadianceField, config: RenderConfig = RenderConfig(), device=None):
    """A nerfacc ``OccGridEstimator`` over the field's box (import of nerfacc is lazy)."""
    from nerfacc import OccGridEstimator

    b = field.config.bound
    estimator = OccGridEstimator(
        roi_aabb=[-b, -b, -b, b, b, b], resolution=config.grid_resolution, levels=1
    )
    return estimator.to(device if device is not None else next(field.parameters()).device)


def update_occupancy(
    estimator, field: RadianceField, step: int, config: RenderConfig = RenderConfig()
) -> None:
    """Updates the occupancy grid from the field's density (every ``config.update_every`` steps).

    nerfacc warms up for 256 steps (all cells re-evaluated), then samples cells.
    """
    def occ_eval_fn(x: Tensor) -> Tensor:
        return field.density(x) * config.render_step_size

    estimator.update_every_n_steps(
        step=step, occ_eval_fn=occ_eval_fn, occ_thre=config.occ_threshold, n=config.update_every
    )


def _dense_samples(
    origins: Tensor, directions: Tensor, bound: float, config: RenderConfig
) -> tuple[Tensor, Tensor]:
    t_near, t_far, _ = ray_box_intersect(origins, directions, bound)
    steps = torch.linspace(0.0, 1.0, config.n_samples + 1, device=origins.device)
    edges = t_near[:, None] + (t_far - t_near)[:, None] * steps  # [R, S + 1]
    return edges[:, :-1], edges[:, 1:]


def _evaluate(field, method: str, points: Tensor, ray_ids: Tensor | None, views):
    """``field.<method>(points)``, or with ``views`` each view's points with its own aliases
    (:class:`sdlib.nerf.per_view.ViewParameters`); ``ray_ids`` ``[N]`` global ray indices
    (needed with ``views`` only)."""
    if views is None:
        return field(points) if method == "forward" else getattr(field, method)(points)
    return views.call(method, points, ray_ids)


def _render_dense(field, origins, directions, config: RenderConfig, generator=None, views=None,
                  ray_offset: int = 0):
    from nerfacc import accumulate_along_rays, render_weight_from_density

    t_starts, t_ends = _dense_samples(origins, directions, field.config.bound, config)
    if config.stratified and field.training:
        u = torch.rand(t_starts.shape, device=t_starts.device, generator=generator)
    else:
        u = torch.full_like(t_starts, 0.5)
    t_mid = t_starts + (t_ends - t_starts) * u  # [R, S]
    points = origins[:, None, :] + t_mid[..., None] * directions[:, None, :]  # [R, S, 3]
    n_rays, n_steps = t_mid.shape
    ray_ids = None
    if views is not None:
        ray_ids = ray_offset + torch.arange(n_rays, device=points.device).repeat_interleave(
            n_steps)
        sigmas, colors = _evaluate(field, "forward", points.reshape(-1, 3), ray_ids, views)
        sigmas, colors = sigmas.reshape(n_rays, n_steps), colors.reshape(n_rays, n_steps, 3)
    else:
        sigmas, colors = field(points)
    weights, _, _ = render_weight_from_density(t_starts, t_ends, sigmas)
    rgb = accumulate_along_rays(weights, colors)
    depth_sum = accumulate_along_rays(weights, t_mid[..., None])[..., 0]
    opacity = accumulate_along_rays(weights, None)[..., 0]
    normals = None
    if config.compute_normals:
        if views is not None:
            n = _evaluate(field, "normals", points.reshape(-1, 3), ray_ids, views)
            n = n.reshape(n_rays, n_steps, 3)
        else:
            n = field.normals(points)
        normals = accumulate_along_rays(weights, n)
    return RayOutput(rgb, expected_depth(depth_sum, opacity), opacity, normals,
                     n_samples=t_mid.numel(), depth_sum=depth_sum)


def _render_occgrid(field, estimator, origins, directions, config: RenderConfig, views=None,
                    ray_offset: int = 0):
    from nerfacc import accumulate_along_rays, render_weight_from_density

    n_rays = origins.shape[0]

    def sigma_fn(t_starts, t_ends, ray_indices):
        t_mid = 0.5 * (t_starts + t_ends)
        return field.density(origins[ray_indices] + t_mid[:, None] * directions[ray_indices])

    ray_indices, t_starts, t_ends = estimator.sampling(
        origins, directions, sigma_fn=sigma_fn if config.prune_with_density else None,
        render_step_size=config.render_step_size,
        early_stop_eps=config.early_stop_eps, alpha_thre=config.alpha_thre,
        stratified=config.stratified and field.training,
    )
    t_mid = 0.5 * (t_starts + t_ends)
    points = origins[ray_indices] + t_mid[:, None] * directions[ray_indices]
    ray_ids = None if views is None else ray_offset + ray_indices
    sigmas, colors = _evaluate(field, "forward", points, ray_ids, views)
    weights, _, _ = render_weight_from_density(
        t_starts, t_ends, sigmas, ray_indices=ray_indices, n_rays=n_rays
    )
    rgb = accumulate_along_rays(weights, colors, ray_indices=ray_indices, n_rays=n_rays)
    depth_sum = accumulate_along_rays(
        weights, t_mid[:, None], ray_indices=ray_indices, n_rays=n_rays
    )[..., 0]
    opacity = accumulate_along_rays(weights, None, ray_indices=ray_indices, n_rays=n_rays)[..., 0]
    normals = None
    if config.compute_normals:
        normals = accumulate_along_rays(
            weights, _evaluate(field, "normals", points, ray_ids, views),
            ray_indices=ray_indices, n_rays=n_rays
        )
    return RayOutput(rgb, expected_depth(depth_sum, opacity), opacity, normals,
                     n_samples=int(t_mid.numel()), depth_sum=depth_sum)


def render_rays(
    field: RadianceField,
    origins: Tensor,
    directions: Tensor,
    *,
    estimator=None,
    config: RenderConfig = RenderConfig(),
    generator: torch.Generator | None = None,
    background: Tensor | None = None,
    views=None,
) -> RayOutput:
    """Renders rays ``origins, directions`` ``[R, 3]`` (unit directions), background composited.

    Args:
        field: the radiance field (its ``training`` flag turns stratified jitter on).
        origins: ``[R, 3]`` ray origins.
        directions: ``[R, 3]`` unit ray directions.
        estimator: a nerfacc ``OccGridEstimator`` (from :func:`make_estimator`) or None.
        config: sampler settings; ``sampler="dense"`` forces the dense path on CUDA too.
        generator: random generator for the dense sampler's jitter.
        background: ``[R, 3]`` or ``[3]`` colours to composite instead of the field's
            background model (e.g. random colours while fitting masked images).

    Returns:
        :class:`RayOutput` with ``rgb [R, 3]`` (background composited), ``depth [R]``
        (expected termination depth ``sum w t / sum w``), ``opacity [R]``, ``normals [R, 3]``
        (or None) and ``depth_sum [R]`` (``sum w t``).

    Note:
        Differentiable with respect to the field's (and background's) parameters.
    """
    if origins.shape != directions.shape or origins.shape[-1] != 3 or origins.dim() != 2:
        raise ValueError(
            f"render_rays: origins {tuple(origins.shape)} and directions "
            f"{tuple(directions.shape)} must both be [R, 3]"
        )
    sampler = config.sampler
    if sampler == "auto":
        sampler = "occgrid" if (estimator is not None and origins.is_cuda) else "dense"
    if sampler == "occgrid" and (estimator is None or not origins.is_cuda):
        raise ValueError(
            "render_rays: sampler='occgrid' needs an estimator (make_estimator) and CUDA rays; "
            "use sampler='dense' on CPU"
        )
    outputs = []
    for start in range(0, origins.shape[0], config.chunk):
        o = origins[start:start + config.chunk]
        d = directions[start:start + config.chunk]
        if sampler == "occgrid":
            outputs.append(_render_occgrid(field, estimator, o, d, config, views, start))
        else:
            outputs.append(_render_dense(field, o, d, config, generator, views, start))
    rgb = torch.cat([out.rgb for out in outputs])
    opacity = torch.cat([out.opacity for out in outputs])
    if background is None:
        ray_ids = None if views is None else torch.arange(directions.shape[0],
                                                          device=directions.device)
        background = _evaluate(field, "background", directions, ray_ids, views)
    rgb = rgb + (1.0 - opacity[:, None]) * background
    normals = None
    if config.compute_normals:
        normals = torch.cat([out.normals for out in outputs])
    return RayOutput(
        rgb=rgb,
        depth=torch.cat([out.depth for out in outputs]),
        opacity=opacity,
        normals=normals,
        n_samples=sum(out.n_samples for out in outputs),
        depth_sum=torch.cat([out.depth_sum for out in outputs]),
    )


def render_cameras(
    field: RadianceField,
    cameras: Cameras,
    height: int,
    width: int,
    *,
    estimator=None,
    config: RenderConfig = RenderConfig(),
    generator: torch.Generator | None = None,
    views=None,
) -> RenderOutput:
    """Renders ``B`` cameras at ``height x width`` (rays from :func:`sdlib.cameras.get_rays`).

    Args:
        field: the radiance field.
        cameras: ``B`` cameras on the field's device.
        height, width: image size in pixels.
        estimator: optional nerfacc ``OccGridEstimator`` (CUDA); see :func:`render_rays`.
        config: renderer settings.
        generator: random generator for the dense sampler's jitter.
        views: a :class:`~sdlib.nerf.per_view.ViewParameters` for these ``B`` cameras at
            ``H · W`` rays each: each camera's samples see its own aliases of θ.

    Returns:
        :class:`RenderOutput`: ``rgb [B,H,W,3]``, ``depth [B,H,W]``, ``opacity [B,H,W]``,
        ``normals [B,H,W,3]`` (or None), differentiable.
    """
    origins, directions = get_rays(cameras, height, width)
    b = len(cameras)
    if views is not None and (views.n_views, views.rays_per_view) != (b, height * width):
        raise ValueError(f"render_cameras: views are for {views.n_views} cameras of "
                         f"{views.rays_per_view} rays, the render has {b} of {height * width}")
    out = render_rays(
        field, origins.reshape(-1, 3), directions.reshape(-1, 3), estimator=estimator,
        config=config, generator=generator, views=views,
    )
    return RenderOutput(
        rgb=out.rgb.reshape(b, height, width, 3),
        depth=out.depth.reshape(b, height, width),
        opacity=out.opacity.reshape(b, height, width),
        normals=None if out.normals is None else out.normals.reshape(b, height, width, 3),
        depth_sum=out.depth_sum.reshape(b, height, width),
    )
