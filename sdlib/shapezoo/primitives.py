"""ShapeZoo primitives: parts, their exact ray intersections, normals, insides and surface samples.

A ShapeZoo object is a union of coloured **parts**. Each part is one of four primitive kinds,
defined in its own local frame and placed in the world by a rotation ``R`` and a position ``c``
(``x_world = R x_local + c``):

=============  ==========================================  =================================
kind           ``size`` = (s0, s1, s2)                      local surface
=============  ==========================================  =================================
``ellipsoid``  radii ``(a, b, c)``                          ``(x/a)^2 + (y/b)^2 + (z/c)^2 = 1``
``box``        half extents ``(hx, hy, hz)``                ``max(|x|/hx, |y|/hy, |z|/hz) = 1``
``frustum``    ``(r_bottom, r_top, half_height)``           capped cone along z: ``sqrt(x^2+y^2)
                                                            = r(z)``, ``|z| <= h``, caps at
                                                            ``z = -h`` (radius ``r_bottom``) and
                                                            ``z = +h`` (radius ``r_top``)
``torus``      ``(R, r, 0)``: major and minor radius        ``(sqrt(x^2+y^2) - R)^2 + z^2 = r^2``
=============  ==========================================  =================================

A cylinder is a frustum with equal radii and a cone one with ``r_top = 0``; a capsule is a
cylinder plus two spheres (:func:`capsule`). Spheres, ellipsoids, boxes and frusta are
intersected in closed form (quadratics solved in the cancellation-free form
``q = -(B + sign(B) sqrt(B^2 - AC))``, roots ``q / A`` and ``C / q``); the torus is sphere-traced
with its exact signed distance from the entry of its bounding sphere, then polished by Newton
steps, so its depth is exact to float32 rounding wherever the iteration converged (it fails to,
at most, on a grazing ray at the silhouette).

All functions work on tensors of any leading shape ``[...]`` on CPU or CUDA, in float32.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "KINDS",
    "Part",
    "rotation_euler",
    "rotation_to",
    "sphere",
    "ellipsoid",
    "box",
    "cylinder",
    "cone",
    "frustum",
    "torus",
    "capsule",
    "intersect",
    "local_normal",
    "inside",
    "surface_area",
    "sample_surface",
]

Kind = Literal["ellipsoid", "box", "frustum", "torus"]
KINDS: tuple[str, ...] = ("ellipsoid", "box", "frustum", "torus")
"""The primitive kinds, in the order the renderer packs them."""

IDENTITY: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
TORUS_TRACE_STEPS = 48
"""Sphere-tracing steps for a torus before the Newton polish."""
TORUS_NEWTON_STEPS = 3
"""Newton steps on the torus's signed distance along the ray after tracing."""
TORUS_HIT_TOLERANCE = 1e-5
"""A traced torus ray counts as a hit when its final |signed distance| is below this."""


@dataclass(frozen=True)
class Part:
    """One coloured primitive of an object, placed in the world (``x = R x_local + position``)."""

    kind: Kind
    """``"ellipsoid"``, ``"box"``, ``"frustum"`` or ``"torus"`` (see the module table)."""
    size: tuple[float, float, float]
    """Kind-specific sizes (module table), in object units."""
    color: tuple[float, float, float]
    """Diffuse albedo, RGB in [0, 1]."""
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Centre of the local frame in world coordinates."""
    rotation: tuple[float, ...] = IDENTITY
    """Row-major 3x3 rotation ``R`` (local to world); see :func:`rotation_euler`."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Part.kind={self.kind!r}: accepted kinds are {KINDS}")
        if len(self.size) != 3 or len(self.color) != 3 or len(self.position) != 3:
            raise ValueError("Part: size, color and position must have 3 entries each")
        if len(self.rotation) != 9:
            raise ValueError("Part.rotation must be a row-major 3x3 matrix (9 floats)")
        if not all(0.0 <= c <= 1.0 for c in self.color):
            raise ValueError(f"Part.color={self.color!r}: components must lie in [0, 1]")


def rotation_euler(rx: float = 0.0, ry: float = 0.0, rz: float = 0.0) -> tuple[float, ...]:
    """Row-major ``R = Rz(rz) Ry(ry) Rx(rx)`` (degrees): rotate about x, then y, then z."""
    ax, ay, az = (math.radians(v) for v in (rx, ry, rz))
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay),
                              math.cos(az), math.sin(az))
    rxm = ((1, 0, 0), (0, cx, -sx), (0, sx, cx))
    rym = ((cy, 0, sy), (0, 1, 0), (-sy, 0, cy))
    rzm = ((cz, -sz, 0), (sz, cz, 0), (0, 0, 1))

    def mul(a, b):
        return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3))
                     for i in range(3))

    m = mul(rzm, mul(rym, rxm))
    return tuple(float(v) for row in m for v in row)


def rotation_to(direction: Sequence[float]) -> tuple[float, ...]:
    """Row-major rotation taking the local +z axis onto ``direction`` (need not be unit)."""
    d = torch.tensor(direction, dtype=torch.float64)
    d = d / d.norm()
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    v = torch.linalg.cross(z, d)
    c = float(z @ d)
    if v.norm() < 1e-12:
        return IDENTITY if c > 0 else rotation_euler(180.0, 0.0, 0.0)
    vx = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=torch.float64)
    m = torch.eye(3, dtype=torch.float64) + vx + vx @ vx / (1.0 + c)
    return tuple(float(x) for x in m.reshape(-1))


# ---- constructors ----------------------------------------------------------------------------
Vec = tuple[float, float, float]


def sphere(radius: float, color: Vec, at: Vec = (0.0, 0.0, 0.0)) -> Part:
    """A sphere of ``radius`` centred at ``at``."""
    return Part("ellipsoid", (radius, radius, radius), color, at)


def ellipsoid(radii: Vec, color: Vec, at: Vec = (0.0, 0.0, 0.0),
              rotation: tuple[float, ...] = IDENTITY) -> Part:
    """An ellipsoid with semi-axes ``radii`` along its local x, y, z."""
    return Part("ellipsoid", radii, color, at, rotation)


def box(extent: Vec, color: Vec, at: Vec = (0.0, 0.0, 0.0),
        rotation: tuple[float, ...] = IDENTITY) -> Part:
    """A box of full side lengths ``extent`` (not half extents) centred at ``at``."""
    return Part("box", (extent[0] / 2, extent[1] / 2, extent[2] / 2), color, at, rotation)


def frustum(r_bottom: float, r_top: float, height: float, color: Vec,
            at: Vec = (0.0, 0.0, 0.0), axis: Sequence[float] = (0.0, 0.0, 1.0)) -> Part:
    """A capped cone frustum of ``height`` centred at ``at``, its top towards ``axis``."""
    return Part("frustum", (r_bottom, r_top, height / 2), color, at, rotation_to(axis))


def cylinder(radius: float, height: float, color: Vec, at: Vec = (0.0, 0.0, 0.0),
             axis: Sequence[float] = (0.0, 0.0, 1.0)) -> Part:
    """A capped cylinder of ``height`` along ``axis``, centred at ``at``."""
    return frustum(radius, radius, height, color, at, axis)


def cone(radius: float, height: float, color: Vec, at: Vec = (0.0, 0.0, 0.0),
         axis: Sequence[float] = (0.0, 0.0, 1.0)) -> Part:
    """A cone with base ``radius``, its apex towards ``axis``, centred (half height) at ``at``."""
    return frustum(radius, 0.0, height, color, at, axis)


def torus(major: float, minor: float, color: Vec, at: Vec = (0.0, 0.0, 0.0),
          axis: Sequence[float] = (0.0, 0.0, 1.0)) -> Part:
    """A torus around ``axis`` (major radius ``major``, tube radius ``minor``)."""
    if minor >= major:
        raise ValueError(f"torus: minor radius {minor} must be < major radius {major}")
    return Part("torus", (major, minor, 0.0), color, at, rotation_to(axis))


def capsule(a: Vec, b: Vec, radius: float, color: Vec) -> tuple[Part, ...]:
    """A capsule from point ``a`` to point ``b``: a cylinder plus two end spheres (3 parts)."""
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    mid = tuple(float(v) for v in (ta + tb) / 2)
    length = float((tb - ta).norm())
    return (cylinder(radius, length, color, mid, tuple(float(v) for v in tb - ta)),
            sphere(radius, color, a), sphere(radius, color, b))


# ---- intersection (local frame) --------------------------------------------------------------
_EPS = 1e-6


def _quadratic_roots(A: Tensor, B: Tensor, C: Tensor, disc: Tensor | None = None
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Roots of ``A t^2 + 2 B t + C = 0`` without cancellation; returns (t1, t2, real).

    ``disc`` (``B^2 - AC``) may be given when the caller computes it more accurately.
    """
    if disc is None:
        disc = B * B - A * C
    real = disc >= 0
    sq = torch.sqrt(torch.clamp(disc, min=0.0))
    q = -(B + torch.where(B >= 0, sq, -sq))
    q = torch.where(q == 0, 1e-30, q)
    return q / torch.where(A == 0, 1e-30, A), C / q, real


def _first_positive(*candidates: tuple[Tensor, Tensor]) -> Tensor:
    """Smallest candidate ``t > eps`` among (t, valid) pairs; ``inf`` if none."""
    best = None
    for t, ok in candidates:
        t = torch.where(ok & (t > _EPS), t, math.inf)
        best = t if best is None else torch.minimum(best, t)
    return best


def _intersect_ellipsoid(o: Tensor, d: Tensor, size: Tensor) -> Tensor:
    inv = 1.0 / size
    os_, ds = o * inv, d * inv
    A = (ds * ds).sum(-1)
    B = (os_ * ds).sum(-1)
    C = (os_ * os_).sum(-1) - 1.0
    # B^2 - AC = A - |os x ds|^2 (Lagrange's identity): no cancellation of large terms
    root_a, cross = torch.sqrt(A), torch.linalg.cross(os_, ds).norm(dim=-1)
    disc = (root_a - cross) * (root_a + cross)
    t1, t2, real = _quadratic_roots(A, B, C, disc)
    return _first_positive((t1, real), (t2, real))


def _intersect_box(o: Tensor, d: Tensor, size: Tensor) -> Tensor:
    d_safe = torch.where(d.abs() < 1e-12, 1e-12, d)
    inv = 1.0 / d_safe
    t1 = (-size - o) * inv
    t2 = (size - o) * inv
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    hit = t_near <= t_far
    return _first_positive((t_near, hit), (t_far, hit))


def _intersect_frustum(o: Tensor, d: Tensor, size: Tensor) -> Tensor:
    r0, r1, h = size[..., 0], size[..., 1], size[..., 2]
    a = 0.5 * (r0 + r1)
    k = (r1 - r0) / (2.0 * h)
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    base = a + k * oz
    A = dx * dx + dy * dy - k * k * dz * dz
    B = ox * dx + oy * dy - k * base * dz
    C = ox * ox + oy * oy - base * base
    # B^2 - AC = |base d_xy - k dz o_xy|^2 - (o_xy x d_xy)^2, free of the cancellation of
    # large terms that B^2 - AC suffers on thin parts seen from afar
    u = torch.sqrt((base * dx - k * dz * ox) ** 2 + (base * dy - k * dz * oy) ** 2)
    v = (ox * dy - oy * dx).abs()
    t1, t2, real = _quadratic_roots(A, B, C, (u - v) * (u + v))
    side1 = real & ((oz + t1 * dz).abs() <= h)
    side2 = real & ((oz + t2 * dz).abs() <= h)
    dz_safe = torch.where(dz.abs() < 1e-12, 1e-12, dz)
    t_top = (h - oz) / dz_safe
    t_bot = (-h - oz) / dz_safe

    def in_disc(t: Tensor, r: Tensor) -> Tensor:
        x, y = ox + t * dx, oy + t * dy
        return x * x + y * y <= r * r

    return _first_positive((t1, side1), (t2, side2), (t_top, in_disc(t_top, r1)),
                           (t_bot, in_disc(t_bot, r0)))


def _torus_sdf(p: Tensor, major: Tensor, minor: Tensor) -> Tensor:
    rho = torch.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2)
    return torch.sqrt((rho - major) ** 2 + p[..., 2] ** 2) - minor


def _torus_normal(p: Tensor, major: Tensor) -> Tensor:
    rho = torch.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2).clamp_min(1e-12)
    scale = (rho - major) / rho
    g = torch.stack([p[..., 0] * scale, p[..., 1] * scale, p[..., 2]], dim=-1)
    return torch.nn.functional.normalize(g, dim=-1)


def _intersect_torus(o: Tensor, d: Tensor, size: Tensor) -> Tensor:
    o, d, size = torch.broadcast_tensors(o, d, size)
    shape = o.shape[:-1]
    o, d, size = o.reshape(-1, 3), d.reshape(-1, 3), size.reshape(-1, 3)
    major, minor = size[:, 0], size[:, 1]
    # start where the ray enters both the bounding sphere and the slab |z| <= minor
    bound = major + minor
    B = (o * d).sum(-1)
    disc = B * B - ((o * o).sum(-1) - bound * bound)
    sq = torch.sqrt(torch.clamp(disc, min=0.0))
    dz = torch.where(d[:, 2].abs() < 1e-12, 1e-12, d[:, 2])
    z0, z1 = (-minor - o[:, 2]) / dz, (minor - o[:, 2]) / dz
    t_in = torch.maximum(torch.clamp(-B - sq, min=0.0), torch.minimum(z0, z1))
    t_out = torch.minimum(-B + sq, torch.maximum(z0, z1))
    candidate = (disc >= 0) & (t_in <= t_out) & (t_out > 0)
    out = torch.full((o.shape[0],), math.inf, device=o.device)
    rows = candidate.nonzero().squeeze(-1)  # trace only rays that can hit (data-dependent)
    if rows.numel() == 0:
        return out.reshape(shape)
    o, d, major, minor = o[rows], d[rows], major[rows], minor[rows]
    t, t_out = t_in[rows], t_out[rows]
    for _ in range(TORUS_TRACE_STEPS):
        t = t + _torus_sdf(o + t[:, None] * d, major, minor)
    for _ in range(TORUS_NEWTON_STEPS):
        p = o + t[:, None] * d
        s = _torus_sdf(p, major, minor)
        slope = (_torus_normal(p, major) * d).sum(-1)  # d(sdf)/dt
        t = t + torch.where(slope < -0.05, -s / slope.clamp(max=-0.05), s)
    s = _torus_sdf(o + t[:, None] * d, major, minor)
    hit = (s.abs() < TORUS_HIT_TOLERANCE) & (t <= t_out + 1e-4) & (t > _EPS)
    out[rows] = torch.where(hit, t, math.inf)
    return out.reshape(shape)


_INTERSECT = {"ellipsoid": _intersect_ellipsoid, "box": _intersect_box,
              "frustum": _intersect_frustum, "torus": _intersect_torus}


def intersect(kind: str, o: Tensor, d: Tensor, size: Tensor) -> Tensor:
    """Distance ``t`` along unit rays to the first hit of a primitive in its local frame.

    Args:
        kind: one of :data:`KINDS`.
        o: ``[..., 3]`` ray origins (local frame).
        d: ``[..., 3]`` unit ray directions (local frame).
        size: ``[..., 3]`` the part's ``size`` (broadcast against ``o``).

    Returns:
        ``[...]`` hit distance, ``inf`` where the ray misses (or hits only behind its origin).
    """
    return _INTERSECT[kind](o, d, size)


def local_normal(kind: str, p: Tensor, size: Tensor) -> Tensor:
    """``[..., 3]`` unit outward normal at surface points ``p`` ``[..., 3]`` (local frame)."""
    if kind == "ellipsoid":
        return torch.nn.functional.normalize(p / (size * size), dim=-1)
    if kind == "box":
        ratio = p.abs() / size
        axis = ratio.argmax(-1, keepdim=True)
        n = torch.zeros_like(p).scatter_(-1, axis, 1.0)
        return n * torch.where(p >= 0, 1.0, -1.0)
    if kind == "frustum":
        r0, r1, h = size[..., 0], size[..., 1], size[..., 2]
        a = 0.5 * (r0 + r1)
        k = (r1 - r0) / (2.0 * h)
        rho = torch.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2)
        side_err = (rho - (a + k * p[..., 2])).abs() / torch.sqrt(1.0 + k * k)
        cap_err = (p[..., 2].abs() - h).abs()
        side = torch.stack([p[..., 0], p[..., 1], -k * (a + k * p[..., 2])], dim=-1)
        side = torch.nn.functional.normalize(side, dim=-1)
        cap = torch.zeros_like(p)
        cap[..., 2] = torch.where(p[..., 2] >= 0, 1.0, -1.0)
        return torch.where((cap_err < side_err)[..., None], cap, side)
    if kind == "torus":
        return _torus_normal(p, size[..., 0])
    raise ValueError(f"local_normal: unknown kind {kind!r}; accepted: {KINDS}")


def inside(kind: str, p: Tensor, size: Tensor, margin: float = 1e-6) -> Tensor:
    """``[...]`` True where local points ``p`` lie strictly inside the primitive (by ``margin``)."""
    if kind == "ellipsoid":
        return ((p / size) ** 2).sum(-1) < 1.0 - margin
    if kind == "box":
        return (p.abs() < size - margin).all(-1)
    if kind == "frustum":
        r0, r1, h = size[..., 0], size[..., 1], size[..., 2]
        rho = torch.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2)
        radius = 0.5 * (r0 + r1) + (r1 - r0) / (2.0 * h) * p[..., 2]
        return (p[..., 2].abs() < h - margin) & (rho < radius - margin)
    if kind == "torus":
        return _torus_sdf(p, size[..., 0], size[..., 1]) < -margin
    raise ValueError(f"inside: unknown kind {kind!r}; accepted: {KINDS}")


# ---- surface area and uniform surface samples (local frame, float64) -------------------------
def _fibonacci_sphere(n: int) -> Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = math.pi * (1.0 + 5.0**0.5) * i
    r = torch.sqrt(1.0 - z * z)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)


@functools.lru_cache(maxsize=1024)
def surface_area(part: Part) -> float:
    """Surface area of a part (ellipsoids by a 20k-point quadrature, others in closed form)."""
    s0, s1, s2 = part.size
    if part.kind == "ellipsoid":
        u = _fibonacci_sphere(20_000)
        radii = torch.tensor(part.size, dtype=torch.float64)
        return float(4 * math.pi * s0 * s1 * s2 * (u / radii).norm(dim=-1).mean())
    if part.kind == "box":
        return 8.0 * (s0 * s1 + s1 * s2 + s0 * s2)
    if part.kind == "frustum":
        slant = math.hypot(2 * s2, s1 - s0)
        return math.pi * (s0 + s1) * slant + math.pi * (s0 * s0 + s1 * s1)
    return 4 * math.pi * math.pi * s0 * s1


def _unit_sphere(n: int, g: torch.Generator) -> Tensor:
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return torch.nn.functional.normalize(x, dim=-1)


def sample_surface(part: Part, n: int, generator: torch.Generator) -> Tensor:
    """``[n, 3]`` points uniform (by area) on a part's surface, in **world** coordinates, float64.

    Ellipsoid and torus use rejection on the exact area element; box faces and frustum
    side/caps are chosen in proportion to their areas.
    """
    g = generator
    s0, s1, s2 = part.size
    out: list[Tensor] = []
    count = 0
    while count < n:
        m = 2 * (n - count) + 16
        if part.kind == "ellipsoid":
            u = _unit_sphere(m, g)
            radii = torch.tensor(part.size, dtype=torch.float64)
            w = (u / radii).norm(dim=-1) * min(part.size)  # area element / its maximum
            keep = torch.rand(m, generator=g, dtype=torch.float64) < w
            pts = (u * radii)[keep]
        elif part.kind == "box":
            h = torch.tensor(part.size, dtype=torch.float64)
            areas = torch.tensor([s1 * s2, s1 * s2, s0 * s2, s0 * s2, s0 * s1, s0 * s1],
                                 dtype=torch.float64)
            face = torch.multinomial(areas, m, replacement=True, generator=g)
            pts = (torch.rand(m, 3, generator=g, dtype=torch.float64) * 2 - 1) * h
            axis = face // 2
            sign = torch.where(face % 2 == 0, 1.0, -1.0).to(torch.float64)
            pts[torch.arange(m), axis] = sign * h[axis]
        elif part.kind == "frustum":
            slant = math.hypot(2 * s2, s1 - s0)
            areas = torch.tensor([math.pi * (s0 + s1) * slant, math.pi * s0 * s0,
                                  math.pi * s1 * s1], dtype=torch.float64)
            which = torch.multinomial(areas, m, replacement=True, generator=g)
            theta = torch.rand(m, generator=g, dtype=torch.float64) * 2 * math.pi
            z = (torch.rand(m, generator=g, dtype=torch.float64) * 2 - 1) * s2
            radius = 0.5 * (s0 + s1) + (s1 - s0) / (2 * s2) * z
            keep_side = torch.rand(m, generator=g, dtype=torch.float64) * max(s0, s1) < radius
            rad_cap = torch.sqrt(torch.rand(m, generator=g, dtype=torch.float64))
            rad_cap = rad_cap * torch.where(which == 1, s0, s1)
            r = torch.where(which == 0, radius, rad_cap)
            zz = torch.where(which == 0, z, torch.where(which == 1, -s2, s2))
            keep = torch.where(which == 0, keep_side, torch.ones_like(keep_side))
            pts = torch.stack([r * torch.cos(theta), r * torch.sin(theta), zz], dim=-1)[keep]
        else:
            major, minor = s0, s1
            theta = torch.rand(m, generator=g, dtype=torch.float64) * 2 * math.pi
            phi = torch.rand(m, generator=g, dtype=torch.float64) * 2 * math.pi
            w = (major + minor * torch.cos(phi)) / (major + minor)
            keep = torch.rand(m, generator=g, dtype=torch.float64) < w
            rr = major + minor * torch.cos(phi)
            pts = torch.stack([rr * torch.cos(theta), rr * torch.sin(theta),
                               minor * torch.sin(phi)], dim=-1)[keep]
        out.append(pts)
        count += pts.shape[0]
    local = torch.cat(out)[:n]
    rot = torch.tensor(part.rotation, dtype=torch.float64).reshape(3, 3)
    return local @ rot.T + torch.tensor(part.position, dtype=torch.float64)
