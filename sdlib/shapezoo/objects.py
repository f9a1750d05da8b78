"""The ShapeZoo objects: one canonical coloured 3D object per caption (the list is data).

Every object is a union of :class:`~sdlib.shapezoo.primitives.Part` s in the world convention of
:mod:`sdlib.cameras`: z up, centred at the origin, **front facing +x** (the camera at azimuth 0
sees it), and inside the sphere of radius :data:`MAX_RADIUS` = 0.75, which the ShapeZoo camera
preset (distance 1.75, fovy 55 degrees) sees whole from every direction.

To add an object, append a :class:`ShapeObject` to ``OBJECTS`` below (a unique ``name``, a
natural ``prompt``, ``has_front=True`` if its front differs from its back, and its parts built
with the constructors of :mod:`sdlib.shapezoo.primitives`); ``tests/test_shapezoo.py`` checks the
bounds and uniqueness.

>>> get_object("a red mushroom with white spots").name
'mushroom'
>>> len(OBJECTS) >= 24
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sdlib.shapezoo.primitives import (
    Part,
    box,
    capsule,
    cone,
    cylinder,
    ellipsoid,
    frustum,
    rotation_euler,
    rotation_to,
    sphere,
    torus,
)

__all__ = [
    "ShapeObject",
    "UnknownPromptError",
    "OBJECTS",
    "PROMPTS",
    "NAMES",
    "MAX_RADIUS",
    "get_object",
    "object_index",
    "translated",
    "scaled",
]

MAX_RADIUS = 0.75
"""Every object lies inside the sphere of this radius around the origin."""


@dataclass(frozen=True)
class ShapeObject:
    """A captioned object: the union of its parts."""

    name: str
    """Short identifier (``"snowman"``), unique."""
    prompt: str
    """The caption, unique (``"a snowman with a carrot nose and a black hat"``)."""
    has_front: bool
    """True if its front (+x, azimuth 0) differs from its back."""
    parts: tuple[Part, ...]
    """The coloured primitives whose union is the object."""


class UnknownPromptError(KeyError, ValueError):
    """An unknown prompt or name (both a ``KeyError`` and a ``ValueError``)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


# ---- colours ---------------------------------------------------------------------------------
RED = (0.85, 0.12, 0.10)
DARK_RED = (0.45, 0.05, 0.05)
WHITE = (0.95, 0.95, 0.93)
CREAM = (0.93, 0.87, 0.72)
BLACK = (0.08, 0.08, 0.08)
GRAY = (0.55, 0.55, 0.58)
DARK_GRAY = (0.25, 0.25, 0.27)
BROWN = (0.45, 0.26, 0.12)
WOOD = (0.68, 0.45, 0.22)
TAN = (0.85, 0.65, 0.40)
GREEN = (0.20, 0.65, 0.22)
DARK_GREEN = (0.08, 0.42, 0.16)
BLUE = (0.15, 0.32, 0.85)
SKY = (0.45, 0.72, 0.95)
YELLOW = (0.98, 0.82, 0.12)
ORANGE = (0.97, 0.50, 0.08)
PURPLE = (0.55, 0.22, 0.72)
PINK = (0.96, 0.55, 0.70)


def _on_ellipsoid(center, radii, elevation: float, azimuth: float):
    """Point and outward normal on an ellipsoid's surface at spherical angles (degrees)."""
    e, a = math.radians(elevation), math.radians(azimuth)
    u = (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))
    p = tuple(c + r * v for c, r, v in zip(center, radii, u))
    n = tuple(v / r for r, v in zip(radii, u))
    return p, n


def _mushroom() -> tuple[Part, ...]:
    cap_c, cap_r = (0.0, 0.0, 0.02), (0.5, 0.5, 0.3)
    parts = [cylinder(0.14, 0.5, CREAM, (0.0, 0.0, -0.3)), ellipsoid(cap_r, RED, cap_c)]
    spots = [(90.0, 0.0)] + [(35.0, az) for az in (0.0, 72.0, 144.0, 216.0, 288.0)]
    for el, az in spots:
        p, n = _on_ellipsoid(cap_c, cap_r, el, az)
        parts.append(ellipsoid((0.08, 0.08, 0.03), WHITE, p, rotation_to(n)))
    return tuple(parts)


def _table() -> tuple[Part, ...]:
    legs = tuple(box((0.07, 0.07, 0.6), WOOD, (sx * 0.38, sy * 0.23, -0.19))
                 for sx in (-1, 1) for sy in (-1, 1))
    return (box((0.9, 0.6, 0.08), WOOD, (0.0, 0.0, 0.15)),) + legs


def _cake() -> tuple[Part, ...]:
    parts = [cylinder(0.5, 0.3, PINK, (0.0, 0.0, -0.25)),
             cylinder(0.35, 0.25, WHITE, (0.0, 0.0, 0.025))]
    for i in range(5):
        a = 2 * math.pi * i / 5 + math.pi / 5
        x, y = 0.2 * math.cos(a), 0.2 * math.sin(a)
        parts.append(cylinder(0.025, 0.18, BLUE if i % 2 else YELLOW, (x, y, 0.24)))
        parts.append(ellipsoid((0.025, 0.025, 0.045), ORANGE, (x, y, 0.37)))
    return tuple(parts)


def _traffic_cone() -> tuple[Part, ...]:
    r_b, r_t, z0, z1 = 0.28, 0.05, -0.47, 0.38

    def radius(z: float) -> float:
        return r_b + (r_t - r_b) * (z - z0) / (z1 - z0)

    b0, b1 = -0.12, 0.04
    return (
        box((0.64, 0.64, 0.06), BLACK, (0.0, 0.0, -0.5)),
        frustum(r_b, r_t, z1 - z0, ORANGE, (0.0, 0.0, (z0 + z1) / 2)),
        frustum(radius(b0) + 0.006, radius(b1) + 0.006, b1 - b0, WHITE,
                (0.0, 0.0, (b0 + b1) / 2)),
    )


def _snowman() -> tuple[Part, ...]:
    parts = [sphere(0.32, WHITE, (0.0, 0.0, -0.33)), sphere(0.24, WHITE, (0.0, 0.0, 0.1)),
             sphere(0.17, WHITE, (0.0, 0.0, 0.42)),
             cone(0.04, 0.2, ORANGE, (0.25, 0.0, 0.42), axis=(1.0, 0.0, 0.0)),
             sphere(0.028, BLACK, (0.15, 0.06, 0.47)), sphere(0.028, BLACK, (0.15, -0.06, 0.47)),
             cylinder(0.2, 0.02, BLACK, (0.0, 0.0, 0.55)),
             cylinder(0.13, 0.15, BLACK, (0.0, 0.0, 0.63))]
    for dz in (-0.08, 0.0, 0.08):
        parts.append(sphere(0.03, BLACK, (math.sqrt(0.24**2 - dz * dz), 0.0, 0.1 + dz)))
    return tuple(parts)


def _house() -> tuple[Part, ...]:
    w = 0.4
    s = w / math.sqrt(2.0)
    return (
        box((2 * w, 2 * w, 0.5), CREAM, (0.0, 0.0, -0.2)),
        box((2 * s, 0.86, 2 * s), RED, (0.0, 0.0, 0.05), rotation_euler(0.0, 45.0, 0.0)),
        box((0.04, 0.18, 0.3), BROWN, (w, 0.0, -0.3)),
        box((0.04, 0.14, 0.13), SKY, (w, 0.25, -0.12)),
        box((0.04, 0.14, 0.13), SKY, (w, -0.25, -0.12)),
        box((0.1, 0.1, 0.3), DARK_RED, (-0.18, 0.22, 0.33)),
    )


def _chair() -> tuple[Part, ...]:
    legs = tuple(box((0.06, 0.06, 0.45), WOOD, (sx * 0.26, sy * 0.26, -0.31))
                 for sx in (-1, 1) for sy in (-1, 1))
    return legs + (
        box((0.6, 0.6, 0.07), WOOD, (0.0, 0.0, -0.05)),
        box((0.5, 0.5, 0.05), RED, (0.02, 0.0, 0.0)),
        box((0.06, 0.6, 0.55), WOOD, (-0.27, 0.0, 0.25)),
    )


def _rocket() -> tuple[Part, ...]:
    fins = (box((0.02, 0.16, 0.22), RED, (0.0, 0.22, -0.3)),
            box((0.02, 0.16, 0.22), RED, (0.0, -0.22, -0.3)),
            box((0.16, 0.02, 0.22), RED, (0.22, 0.0, -0.3)),
            box((0.16, 0.02, 0.22), RED, (-0.22, 0.0, -0.3)))
    return (cylinder(0.16, 0.7, WHITE, (0.0, 0.0, -0.05)),
            cone(0.16, 0.3, RED, (0.0, 0.0, 0.45)),
            ellipsoid((0.03, 0.075, 0.075), SKY, (0.155, 0.0, 0.1)),
            frustum(0.09, 0.13, 0.1, DARK_GRAY, (0.0, 0.0, -0.45))) + fins


def _robot() -> tuple[Part, ...]:
    return (
        box((0.4, 0.5, 0.5), GRAY, (0.0, 0.0, -0.1)),
        box((0.3, 0.34, 0.25), GRAY, (0.0, 0.0, 0.3)),
        sphere(0.045, BLUE, (0.15, 0.08, 0.33)), sphere(0.045, BLUE, (0.15, -0.08, 0.33)),
        box((0.02, 0.14, 0.03), DARK_GRAY, (0.15, 0.0, 0.23)),
        box((0.02, 0.2, 0.15), YELLOW, (0.2, 0.0, -0.05)),
        cylinder(0.015, 0.12, DARK_GRAY, (0.0, 0.0, 0.485)),
        sphere(0.035, RED, (0.0, 0.0, 0.56)),
        box((0.14, 0.14, 0.25), DARK_GRAY, (0.0, 0.13, -0.475)),
        box((0.14, 0.14, 0.25), DARK_GRAY, (0.0, -0.13, -0.475)),
        box((0.12, 0.1, 0.4), DARK_GRAY, (0.0, 0.31, -0.1)),
        box((0.12, 0.1, 0.4), DARK_GRAY, (0.0, -0.31, -0.1)),
    )


def _teddy() -> tuple[Part, ...]:
    parts = [ellipsoid((0.28, 0.3, 0.33), BROWN, (0.0, 0.0, -0.2)),
             sphere(0.22, BROWN, (0.0, 0.0, 0.3)),
             ellipsoid((0.1, 0.1, 0.07), TAN, (0.19, 0.0, 0.26)),
             sphere(0.035, BLACK, (0.29, 0.0, 0.29)),
             ellipsoid((0.06, 0.2, 0.22), TAN, (0.23, 0.0, -0.22))]
    for sy in (-1, 1):
        parts += [sphere(0.08, BROWN, (-0.02, sy * 0.16, 0.47)),
                  sphere(0.03, BLACK, (0.18, sy * 0.08, 0.37)),
                  ellipsoid((0.09, 0.09, 0.18), BROWN, (0.06, sy * 0.3, -0.12)),
                  ellipsoid((0.16, 0.1, 0.1), BROWN, (0.14, sy * 0.16, -0.48))]
    return tuple(parts)


def _car() -> tuple[Part, ...]:
    parts = [box((0.9, 0.45, 0.2), RED, (0.0, 0.0, -0.1)),
             box((0.45, 0.4, 0.18), SKY, (-0.05, 0.0, 0.09))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(cylinder(0.11, 0.06, BLACK, (sx * 0.28, sy * 0.24, -0.2),
                                  axis=(0.0, 1.0, 0.0)))
        parts += [sphere(0.045, YELLOW, (0.44, sx * 0.15, -0.08)),
                  box((0.02, 0.08, 0.04), DARK_RED, (-0.45, sx * 0.15, -0.08))]
    return tuple(parts)


def _penguin() -> tuple[Part, ...]:
    parts = [ellipsoid((0.3, 0.28, 0.45), BLACK, (0.0, 0.0, -0.1)),
             ellipsoid((0.14, 0.22, 0.36), WHITE, (0.18, 0.0, -0.15)),
             sphere(0.2, BLACK, (0.0, 0.0, 0.42)),
             ellipsoid((0.1, 0.14, 0.11), WHITE, (0.12, 0.0, 0.42)),
             cone(0.045, 0.14, ORANGE, (0.25, 0.0, 0.38), axis=(1.0, 0.0, 0.0))]
    for sy in (-1, 1):
        parts += [sphere(0.025, BLACK, (0.21, sy * 0.06, 0.47)),
                  ellipsoid((0.12, 0.07, 0.03), ORANGE, (0.12, sy * 0.1, -0.55)),
                  ellipsoid((0.08, 0.04, 0.24), BLACK, (0.0, sy * 0.28, -0.07),
                            rotation_euler(sy * 15.0, 0.0, 0.0))]
    return tuple(parts)


def _duck() -> tuple[Part, ...]:
    return (ellipsoid((0.4, 0.3, 0.25), YELLOW, (-0.05, 0.0, -0.2)),
            sphere(0.2, YELLOW, (0.15, 0.0, 0.18)),
            ellipsoid((0.12, 0.08, 0.035), ORANGE, (0.36, 0.0, 0.15)),
            sphere(0.03, BLACK, (0.31, 0.08, 0.25)), sphere(0.03, BLACK, (0.31, -0.08, 0.25)),
            ellipsoid((0.1, 0.08, 0.06), YELLOW, (-0.42, 0.0, -0.05),
                      rotation_euler(0.0, -35.0, 0.0)))


def _television() -> tuple[Part, ...]:
    return ((box((0.4, 0.6, 0.45), DARK_GRAY, (0.0, 0.0, -0.05)),
             box((0.02, 0.44, 0.32), SKY, (0.2, -0.03, -0.03)),
             cylinder(0.025, 0.03, GRAY, (0.2, 0.24, 0.08), axis=(1.0, 0.0, 0.0)),
             cylinder(0.025, 0.03, GRAY, (0.2, 0.24, -0.02), axis=(1.0, 0.0, 0.0)),
             box((0.3, 0.4, 0.06), BLACK, (0.0, 0.0, -0.3)))
            + capsule((0.0, 0.0, 0.17), (0.0, 0.2, 0.5), 0.012, GRAY)
            + capsule((0.0, 0.0, 0.17), (0.0, -0.2, 0.5), 0.012, GRAY))


def _barrel() -> tuple[Part, ...]:
    return (frustum(0.3, 0.36, 0.35, WOOD, (0.0, 0.0, -0.175)),
            frustum(0.36, 0.3, 0.35, WOOD, (0.0, 0.0, 0.175)),
            torus(0.355, 0.02, DARK_GRAY, (0.0, 0.0, 0.0)),
            torus(0.315, 0.02, DARK_GRAY, (0.0, 0.0, 0.28)),
            torus(0.315, 0.02, DARK_GRAY, (0.0, 0.0, -0.28)))


def _lamp() -> tuple[Part, ...]:
    return (cylinder(0.25, 0.06, DARK_GRAY, (0.0, 0.0, -0.5)),
            cylinder(0.03, 0.62, GRAY, (0.0, 0.0, -0.17)),
            frustum(0.32, 0.18, 0.35, YELLOW, (0.0, 0.0, 0.25)))


def _mug() -> tuple[Part, ...]:
    return (cylinder(0.3, 0.7, WHITE, (0.0, 0.0, 0.0)),
            cylinder(0.27, 0.02, BROWN, (0.0, 0.0, 0.355)),
            torus(0.17, 0.045, WHITE, (0.0, 0.32, 0.0), axis=(1.0, 0.0, 0.0)),
            ellipsoid((0.02, 0.1, 0.1), RED, (0.3, 0.0, 0.0)))


OBJECTS: tuple[ShapeObject, ...] = (
    # primitives
    ShapeObject("ball", "a red ball", False, (sphere(0.5, RED),)),
    ShapeObject("cube", "a blue cube", False, (box((0.7, 0.7, 0.7), BLUE),)),
    ShapeObject("cylinder", "a green cylinder", False, (cylinder(0.35, 0.9, GREEN),)),
    ShapeObject("cone", "a yellow cone", False, (cone(0.45, 1.0, YELLOW),)),
    ShapeObject("donut", "a pink donut", False, (torus(0.4, 0.18, PINK),)),
    ShapeObject("capsule", "a purple capsule", False,
                capsule((0.0, 0.0, -0.35), (0.0, 0.0, 0.35), 0.25, PURPLE)),
    ShapeObject("egg", "a white egg", False, (ellipsoid((0.35, 0.35, 0.5), WHITE),)),
    # composites, the same from the front and the back
    ShapeObject("mushroom", "a red mushroom with white spots", False, _mushroom()),
    ShapeObject("table", "a wooden table", False, _table()),
    ShapeObject("lamp", "a table lamp with a yellow shade", False, _lamp()),
    ShapeObject("pine_tree", "a green pine tree", False, (
        cylinder(0.08, 0.25, BROWN, (0.0, 0.0, -0.5)),
        cone(0.45, 0.45, DARK_GREEN, (0.0, 0.0, -0.2)),
        cone(0.36, 0.4, DARK_GREEN, (0.0, 0.0, 0.08)),
        cone(0.26, 0.35, DARK_GREEN, (0.0, 0.0, 0.35)))),
    ShapeObject("dumbbell", "a black dumbbell", False, (
        cylinder(0.05, 0.9, GRAY, axis=(0.0, 1.0, 0.0)),
        cylinder(0.22, 0.16, BLACK, (0.0, 0.36, 0.0), axis=(0.0, 1.0, 0.0)),
        cylinder(0.22, 0.16, BLACK, (0.0, -0.36, 0.0), axis=(0.0, 1.0, 0.0)))),
    ShapeObject("cake", "a birthday cake with candles", False, _cake()),
    ShapeObject("traffic_cone", "an orange traffic cone", False, _traffic_cone()),
    ShapeObject("ice_cream", "an ice cream cone with a pink scoop", False, (
        cone(0.2, 0.6, TAN, (0.0, 0.0, -0.2), axis=(0.0, 0.0, -1.0)),
        sphere(0.25, PINK, (0.0, 0.0, 0.22)))),
    ShapeObject("barrel", "a wooden barrel", False, _barrel()),
    # composites with a front (+x) that differs from their back
    ShapeObject("snowman", "a snowman with a carrot nose and a black hat", True, _snowman()),
    ShapeObject("house", "a house with a red roof and a door on its front", True, _house()),
    ShapeObject("mug", "a white mug with a red logo and a handle", True, _mug()),
    ShapeObject("chair", "a wooden chair with a red cushion", True, _chair()),
    ShapeObject("rocket", "a white rocket with red fins and a round window", True, _rocket()),
    ShapeObject("robot", "a gray robot with blue eyes", True, _robot()),
    ShapeObject("teddy_bear", "a brown teddy bear", True, _teddy()),
    ShapeObject("car", "a red car with yellow headlights", True, _car()),
    ShapeObject("penguin", "a penguin with an orange beak", True, _penguin()),
    ShapeObject("duck", "a yellow rubber duck", True, _duck()),
    ShapeObject("television", "an old television with a blue screen", True, _television()),
)
"""All ShapeZoo objects, in a fixed order (an object's index is its ``object_index``)."""

PROMPTS: tuple[str, ...] = tuple(o.prompt for o in OBJECTS)
"""The prompts of :data:`OBJECTS`, in order."""
NAMES: tuple[str, ...] = tuple(o.name for o in OBJECTS)
"""The names of :data:`OBJECTS`, in order."""
BENCHMARK_PROMPTS: tuple[str, ...] = (
    "a snowman with a carrot nose and a black hat",
    "a house with a red roof and a door on its front",
    "a brown teddy bear",
    "a red car with yellow headlights",
    "a penguin with an orange beak",
    "a red mushroom with white spots",
    "a table lamp with a yellow shade",
    "a birthday cake with candles",
)
"""The 8 prompts of the quality table and the claims sweep (the first 5 with a distinct front)."""


def _normalise(text: str) -> str:
    return " ".join(text.lower().strip().split())


def prompt_index(items, prompt_or_name: str, kind: str = "", suffixes: tuple[str, ...] = ()) -> int:
    """Index in ``items`` (objects or scenes: each has ``prompt`` and ``name``) of a prompt or
    name, case and spacing ignored, one of ``suffixes`` at its end dropped.

    Raises:
        UnknownPromptError: listing every accepted prompt of ``items``.
    """
    key = _normalise(prompt_or_name)
    for suffix in suffixes:
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    for i, item in enumerate(items):
        if key in (_normalise(item.prompt), _normalise(item.name)):
            return i
    accepted = "\n".join(f"  {o.prompt!r} (name {o.name!r})" for o in items)
    raise UnknownPromptError(
        f"unknown ShapeZoo {kind}prompt or name {prompt_or_name!r}; accepted prompts:\n{accepted}"
    )


def object_index(prompt_or_name: str) -> int:
    """Index in :data:`OBJECTS` of a prompt or name (case and spacing ignored).

    A view suffix (``", front view"``) at the end of a prompt is ignored.

    Raises:
        UnknownPromptError: (a ``KeyError`` and ``ValueError``) listing every accepted prompt.
    """
    return prompt_index(OBJECTS, prompt_or_name,
                        suffixes=(", front view", ", side view", ", back view", ", overhead view"))


def get_object(prompt_or_name: str | ShapeObject) -> ShapeObject:
    """The object of a prompt or name (see :func:`object_index`); objects pass through."""
    if isinstance(prompt_or_name, ShapeObject):
        return prompt_or_name
    return OBJECTS[object_index(prompt_or_name)]


def translated(obj: ShapeObject, offset: tuple[float, float, float]) -> ShapeObject:
    """A copy of ``obj`` moved by ``offset`` (for metrics against a displaced object)."""
    parts = tuple(
        replace(p, position=tuple(a + b for a, b in zip(p.position, offset))) for p in obj.parts
    )
    return replace(obj, name=f"{obj.name}_moved", parts=parts)


def scaled(obj: ShapeObject, factor: float) -> ShapeObject:
    """A copy of ``obj`` scaled by ``factor`` about the origin."""
    if factor <= 0:
        raise ValueError(f"scaled: factor {factor} must be > 0")
    parts = tuple(
        replace(p, size=tuple(s * factor for s in p.size),
                position=tuple(c * factor for c in p.position))
        for p in obj.parts
    )
    return replace(obj, name=f"{obj.name}_scaled", parts=parts)
