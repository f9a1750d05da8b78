"""Cameras: sampling, view-dependent prompts, rays and projection, in one convention.

Everything in sdlib that turns a camera into pixels (the ShapeZoo renderer, the NeRF renderer,
the text-to-3D trainer) goes through this module, so one convention holds everywhere.

Convention
----------
* **World**: right-handed, **z up**. Objects sit at the origin inside the unit sphere and their
  **front faces +x**.
* **Spherical camera position**: elevation ``el`` (degrees above the xy-plane), azimuth ``az``
  (degrees, counter-clockwise seen from above, ``az = 0`` on the +x axis), distance ``d``::

      o = d (cos el cos az, cos el sin az, sin el)

  so **azimuth 0 looks at the object's front**; azimuth 180 at its back.
* **Camera-to-world** ``c2w`` ``[4, 4]`` in the OpenGL / NeRF convention: columns are the
  camera's right (x), up (y) and backward (z) axes in world coordinates, then its position. The
  camera looks down its own ``-z`` and always at the origin; "up" is the world z projected.
* **Pixels**: ``H x W`` images, row ``i`` from the top, column ``j`` from the left; a pixel's ray
  passes through its centre ``(j + 0.5, i + 0.5)``. Square pixels; ``fovy`` is the vertical
  field of view; focal length ``f = (H / 2) / tan(fovy / 2)`` in pixels.
* **Depth** is the distance **along the (unit) ray**, the quantity a NeRF renders as
  ``sum_i w_i t_i``; ``project`` also returns it.
* **View suffix** (threestudio's rule, DESIGN.md §5): "overhead view" if ``el >
  overhead_threshold``; else "front view" if ``|az| < front_threshold``; else "back view" if
  ``|az| > 180 - back_threshold``; else "side view" (azimuth wrapped to ``(-180, 180]``).

Presets
-------
``PAPER_CAMERAS`` are the reference ranges of the paper's setting (distance 1.5-2, fovy
40-70 degrees, elevation -10-45). ``SHAPEZOO_CAMERAS`` fix distance (1.75) and fovy (55
degrees), so that an object's size in the image determines its size in 3D (DESIGN.md §7); the
ShapeZoo priors are trained with it and text-to-3D on ShapeZoo should use it.
``SCENE_CAMERAS`` (``inside=True``) are the same look-at cameras placed *inside* a scene, 0.1-0.5
from its centre, so each looks through the centre at the far side of the scene.

>>> cams = sample_cameras(SHAPEZOO_CAMERAS, 4, generator=torch.Generator().manual_seed(0))
>>> origins, dirs = get_rays(cams, 32, 32)
>>> origins.shape, dirs.shape
(torch.Size([4, 32, 32, 3]), torch.Size([4, 32, 32, 3]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

__all__ = [
    "CameraConfig",
    "Cameras",
    "PAPER_CAMERAS",
    "SHAPEZOO_CAMERAS",
    "SCENE_CAMERAS",
    "VIEW_SUFFIXES",
    "sample_cameras",
    "cameras_from_spherical",
    "eval_cameras",
    "view_suffix",
    "view_prompt",
    "focal_length",
    "intrinsics",
    "get_rays",
    "project",
]

VIEW_SUFFIXES: tuple[str, ...] = ("front view", "side view", "back view", "overhead view")
"""The four view suffixes, in this order (their index is the ``view_index``)."""


@dataclass(frozen=True)
class CameraConfig:
    """Ranges from which training cameras are drawn, and the view-suffix thresholds.

    Each range is ``(low, high)``, sampled uniformly (in degrees for angles); a range with
    ``low == high`` fixes the value.
    """

    distance: tuple[float, float] = (1.5, 2.0)
    """Camera distance from the origin, in object units (must be > 1: outside the unit sphere)."""
    fovy: tuple[float, float] = (40.0, 70.0)
    """Vertical field of view in degrees, within (0, 180)."""
    elevation: tuple[float, float] = (-10.0, 45.0)
    """Elevation above the xy-plane in degrees, within (-90, 90)."""
    azimuth: tuple[float, float] = (-180.0, 180.0)
    """Azimuth in degrees; 0 is the object's front (+x)."""
    front_threshold: float = 45.0
    """|azimuth| below this (degrees) is a front view."""
    back_threshold: float = 45.0
    """|azimuth| above ``180 - back_threshold`` is a back view."""
    overhead_threshold: float = 60.0
    """Elevation above this (degrees) is an overhead view, whatever the azimuth."""
    inside: bool = False
    """Inside-out cameras (scenes, threestudio's scene setting): ``distance`` lies in (0, 1), so
    the camera sits near the scene centre and, looking at the origin, looks *through* it at the
    far side of the scene: a camera at azimuth ``az`` sees the scene towards azimuth
    ``az + 180``. Scene captions carry no view suffix."""

    def __post_init__(self) -> None:
        dist_range = ((0.0, 1.0, "(0, 1): inside the unit sphere (inside=True)") if self.inside
                      else (1.0, math.inf, "(1, inf): outside the unit sphere"))
        checks = {
            "distance": (self.distance, *dist_range),
            "fovy": (self.fovy, 0.0, 180.0, "(0, 180) degrees"),
            "elevation": (self.elevation, -90.0, 90.0, "(-90, 90) degrees"),
            "azimuth": (self.azimuth, -360.0, 360.0, "[-360, 360] degrees"),
        }
        for name, (rng, lo, hi, accepted) in checks.items():
            if len(rng) != 2 or not all(isinstance(v, (int, float)) for v in rng):
                raise ValueError(f"CameraConfig.{name}={rng!r}: expected a (low, high) pair")
            a, b = float(rng[0]), float(rng[1])
            inclusive = name == "azimuth"
            ok = (lo <= a and b <= hi) if inclusive else (lo < a and b < hi)
            if not (a <= b and ok):
                raise ValueError(
                    f"CameraConfig.{name}={rng!r} is invalid: need low <= high, both in {accepted}"
                )
        for name in ("front_threshold", "back_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 180.0:
                raise ValueError(f"CameraConfig.{name}={v!r}: accepted range is [0, 180] degrees")
        if not -90.0 <= self.overhead_threshold <= 90.0:
            raise ValueError(
                f"CameraConfig.overhead_threshold={self.overhead_threshold!r}: "
                "accepted range is [-90, 90] degrees"
            )


PAPER_CAMERAS = CameraConfig()
"""The paper's reference ranges (threestudio defaults, DESIGN.md §5)."""
SHAPEZOO_CAMERAS = CameraConfig(distance=(1.75, 1.75), fovy=(55.0, 55.0))
"""Fixed distance and field of view: size in the image fixes size in 3D (DESIGN.md §7)."""
SCENE_CAMERAS = CameraConfig(distance=(0.1, 0.5), fovy=(60.0, 60.0), elevation=(-5.0, 30.0),
                             inside=True)
"""Inside-out cameras for ShapeZoo scenes (:mod:`sdlib.shapezoo.scenes`): 0.1-0.5 from the
scene centre (eye height, 0.5 above the floor), looking through it outward, fovy 60 degrees,
elevation -5 to 30 degrees. ProlificDreamer's scene setting (threestudio's
``prolificdreamer-scene.yaml``) draws look-at cameras the same way, at distances 0.1-2.3 in a
volume of radius 5; 0.1-0.5 keeps ours in the clear space of rooms 1.8 in half-size."""


@dataclass(frozen=True)
class Cameras:
    """A batch of ``B`` pinhole cameras looking at the origin.

    All tensors share one device; angles in degrees except where named.
    """

    c2w: Tensor
    """``[B, 4, 4]`` camera-to-world matrices (OpenGL convention, see module docstring)."""
    fovy: Tensor
    """``[B]`` vertical field of view, degrees."""
    elevation: Tensor
    """``[B]`` elevation, degrees."""
    azimuth: Tensor
    """``[B]`` azimuth, degrees, wrapped to (-180, 180]."""
    distance: Tensor
    """``[B]`` distance from the origin."""
    config: CameraConfig = field(default=PAPER_CAMERAS)
    """The config whose thresholds give the view suffixes."""

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    @property
    def origins(self) -> Tensor:
        """``[B, 3]`` camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    def to(self, device: torch.device | str) -> Cameras:
        return replace(self, **{k: getattr(self, k).to(device) for k in _TENSOR_FIELDS})

    def __getitem__(self, index: int | slice | Tensor) -> Cameras:
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return replace(self, **{k: getattr(self, k)[index] for k in _TENSOR_FIELDS})

    def view_suffixes(self) -> list[str]:
        """The view suffix of each camera ("front view", ...)."""
        return view_suffix(self.elevation, self.azimuth, self.config)

    def view_indices(self) -> Tensor:
        """``[B]`` index into :data:`VIEW_SUFFIXES` of each camera's suffix."""
        return _view_index(self.elevation, self.azimuth, self.config)

    @staticmethod
    def cat(cameras: list[Cameras]) -> Cameras:
        """Concatenates batches (the first batch's config is kept)."""
        if not cameras:
            raise ValueError("Cameras.cat: got an empty list")
        return replace(
            cameras[0],
            **{k: torch.cat([getattr(c, k) for c in cameras]) for k in _TENSOR_FIELDS},
        )


_TENSOR_FIELDS = ("c2w", "fovy", "elevation", "azimuth", "distance")


def _wrap_degrees(angle: Tensor) -> Tensor:
    """Wraps angles to (-180, 180]."""
    wrapped = torch.remainder(angle + 180.0, 360.0) - 180.0
    return torch.where(wrapped == -180.0, torch.full_like(wrapped, 180.0), wrapped)


def cameras_from_spherical(
    elevation: Tensor | float,
    azimuth: Tensor | float,
    distance: Tensor | float,
    fovy: Tensor | float,
    config: CameraConfig = PAPER_CAMERAS,
    device: torch.device | str | None = None,
) -> Cameras:
    """Builds look-at cameras from spherical coordinates (degrees), broadcast to a batch.

    Args:
        elevation: ``[B]`` or scalar, degrees in (-90, 90).
        azimuth: ``[B]`` or scalar, degrees; 0 looks at the front (+x).
        distance: ``[B]`` or scalar, > 0.
        fovy: ``[B]`` or scalar, degrees in (0, 180).
        config: whose thresholds name the views.
        device: device of the result (default: that of the first tensor argument, else CPU).

    Returns:
        :class:`Cameras` of batch size ``B``.
    """
    args = [elevation, azimuth, distance, fovy]
    if device is None:
        device = next((a.device for a in args if isinstance(a, Tensor)), torch.device("cpu"))
    el, az, dist, fov = torch.broadcast_tensors(
        *[torch.as_tensor(a, dtype=torch.float32, device=device).reshape(-1) for a in args]
    )
    if torch.any(el.abs() >= 90.0):
        raise ValueError("cameras_from_spherical: elevation must lie in (-90, 90) degrees")
    if torch.any(dist <= 0.0):
        raise ValueError("cameras_from_spherical: distance must be > 0")
    if torch.any((fov <= 0.0) | (fov >= 180.0)):
        raise ValueError("cameras_from_spherical: fovy must lie in (0, 180) degrees")
    el_r, az_r = torch.deg2rad(el), torch.deg2rad(az)
    position = dist[:, None] * torch.stack(
        [torch.cos(el_r) * torch.cos(az_r), torch.cos(el_r) * torch.sin(az_r), torch.sin(el_r)],
        dim=-1,
    )
    forward = -position / dist[:, None]
    world_up = torch.tensor([0.0, 0.0, 1.0], device=device).expand_as(forward)
    right = torch.nn.functional.normalize(torch.cross(forward, world_up, dim=-1), dim=-1)
    up = torch.cross(right, forward, dim=-1)
    c2w = torch.zeros(el.shape[0], 4, 4, device=device)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = up
    c2w[:, :3, 2] = -forward
    c2w[:, :3, 3] = position
    c2w[:, 3, 3] = 1.0
    return Cameras(c2w=c2w, fovy=fov, elevation=el, azimuth=_wrap_degrees(az), distance=dist,
                   config=config)


def sample_cameras(
    config: CameraConfig,
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    stratified: bool = False,
) -> Cameras:
    """Draws ``n`` cameras with every coordinate uniform in its range (angles in degrees).

    Args:
        config: the ranges (:data:`PAPER_CAMERAS`, :data:`SHAPEZOO_CAMERAS` or your own).
        n: number of cameras, >= 1.
        generator: a CPU ``torch.Generator`` for reproducible draws.
        device: device of the result.
        stratified: one azimuth per stratum of the range, in random order (each camera on its
            own still uniform; :func:`sdlib.distill.common.stratified_uniform`).
    """
    if n < 1:
        raise ValueError(f"sample_cameras: n={n} must be >= 1")
    u = torch.rand(4, n, generator=generator)
    if stratified:
        from sdlib.distill.common import stratified_uniform

        u[1] = stratified_uniform(n, generator)

    def lerp(rng: tuple[float, float], x: Tensor) -> Tensor:
        return rng[0] + (rng[1] - rng[0]) * x

    return cameras_from_spherical(
        lerp(config.elevation, u[0]), lerp(config.azimuth, u[1]), lerp(config.distance, u[2]),
        lerp(config.fovy, u[3]), config=config, device=device,
    )


def eval_cameras(
    n_views: int = 8,
    elevation: float = 15.0,
    config: CameraConfig = SHAPEZOO_CAMERAS,
    device: torch.device | str = "cpu",
) -> Cameras:
    """Fixed evaluation cameras: ``n_views`` azimuths evenly spaced from 0 (the front).

    Distance and fovy are the midpoints of ``config``'s ranges.
    """
    if n_views < 1:
        raise ValueError(f"eval_cameras: n_views={n_views} must be >= 1")
    azimuth = torch.arange(n_views, dtype=torch.float32) * (360.0 / n_views)
    return cameras_from_spherical(
        elevation, azimuth, sum(config.distance) / 2, sum(config.fovy) / 2, config=config,
        device=device,
    )


def _view_index(elevation: Tensor, azimuth: Tensor, config: CameraConfig) -> Tensor:
    az = _wrap_degrees(torch.as_tensor(azimuth, dtype=torch.float32)).abs()
    el = torch.as_tensor(elevation, dtype=torch.float32)
    index = torch.ones_like(az, dtype=torch.long)  # side
    index = torch.where(az < config.front_threshold, torch.zeros_like(index), index)
    index = torch.where(az > 180.0 - config.back_threshold, torch.full_like(index, 2), index)
    return torch.where(el > config.overhead_threshold, torch.full_like(index, 3), index)


def view_suffix(
    elevation: Tensor | float, azimuth: Tensor | float, config: CameraConfig = PAPER_CAMERAS
) -> list[str]:
    """The view suffix of each (elevation, azimuth) pair, by ``config``'s thresholds.

    >>> view_suffix(torch.tensor([0.0, 0.0, 0.0, 70.0]), torch.tensor([10.0, 90.0, 180.0, 0.0]))
    ['front view', 'side view', 'back view', 'overhead view']
    """
    el = torch.as_tensor(elevation, dtype=torch.float32).reshape(-1)
    az = torch.as_tensor(azimuth, dtype=torch.float32).reshape(-1)
    el, az = torch.broadcast_tensors(el, az)
    return [VIEW_SUFFIXES[i] for i in _view_index(el.cpu(), az.cpu(), config).tolist()]


def view_prompt(prompt: str, suffix: str) -> str:
    """The view-dependent prompt: ``"<prompt>, <suffix>"`` (threestudio's form)."""
    if suffix not in VIEW_SUFFIXES:
        raise ValueError(f"view_prompt: unknown suffix {suffix!r}; accepted: {VIEW_SUFFIXES}")
    return f"{prompt}, {suffix}"


def focal_length(fovy: Tensor, height: int) -> Tensor:
    """``[B]`` focal length in pixels: ``(H / 2) / tan(fovy / 2)`` (fovy in degrees)."""
    return 0.5 * height / torch.tan(0.5 * torch.deg2rad(fovy))


def intrinsics(cameras: Cameras, height: int, width: int) -> Tensor:
    """``[B, 3, 3]`` pinhole intrinsics ``K`` for pixel coordinates (x right, y down).

    ``K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]]``; a pixel centre is at ``(j + 0.5, i + 0.5)``.
    """
    f = focal_length(cameras.fovy, height)
    K = torch.zeros(len(cameras), 3, 3, device=cameras.device)
    K[:, 0, 0] = f
    K[:, 1, 1] = f
    K[:, 0, 2] = 0.5 * width
    K[:, 1, 2] = 0.5 * height
    K[:, 2, 2] = 1.0
    return K


def get_rays(cameras: Cameras, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Rays through the pixel centres of every camera.

    Args:
        cameras: a batch of ``B`` cameras.
        height: image height ``H`` in pixels.
        width: image width ``W`` in pixels.

    Returns:
        ``origins`` ``[B, H, W, 3]`` and unit ``directions`` ``[B, H, W, 3]`` in world space.
    """
    if height < 1 or width < 1:
        raise ValueError(f"get_rays: image size {height}x{width} must be positive")
    device = cameras.device
    f = focal_length(cameras.fovy, height)[:, None, None]  # [B, 1, 1]
    i, j = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    x = (j + 0.5 - 0.5 * width) / f  # [B, H, W]
    y = -(i + 0.5 - 0.5 * height) / f
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B, H, W, 3]
    rot = cameras.c2w[:, :3, :3]  # [B, 3, 3]
    directions = torch.einsum("bij,bhwj->bhwi", rot, d_cam)
    directions = torch.nn.functional.normalize(directions, dim=-1)
    origins = cameras.c2w[:, None, None, :3, 3].expand_as(directions)
    return origins, directions


def project(points: Tensor, cameras: Cameras, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Projects world points into each camera's image.

    Args:
        points: ``[B, N, 3]`` world points (one set per camera).
        cameras: ``B`` cameras.
        height, width: image size in pixels.

    Returns:
        ``pixels`` ``[B, N, 2]`` as ``(x, y)`` = (column, row) in continuous pixel coordinates
        (the centre of pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``), and ``depth`` ``[B, N]``, the
        distance from the camera centre along the ray (negative for points behind the camera).
    """
    rot = cameras.c2w[:, :3, :3]
    rel = points - cameras.c2w[:, None, :3, 3]
    p_cam = torch.einsum("bji,bnj->bni", rot, rel)  # R^T (p - o)
    z = -p_cam[..., 2]
    f = focal_length(cameras.fovy, height)[:, None]
    px = f * p_cam[..., 0] / z + 0.5 * width
    py = -f * p_cam[..., 1] / z + 0.5 * height
    depth = rel.norm(dim=-1) * torch.sign(z)
    return torch.stack([px, py], dim=-1), depth
