"""ShapeZoo scenes: captioned procedural rooms and yards, seen from inside.

A :class:`Scene` is a :class:`~sdlib.shapezoo.objects.ShapeObject` (a union of coloured parts, so
:func:`~sdlib.shapezoo.render.render_objects` renders it exactly) that surrounds its centre
instead of sitting at it: a floor (or ground) at ``z = FLOOR_Z``, walls (or hedges, fences,
buildings) around, and ShapeZoo objects placed on the floor, scaled and turned
(:func:`place`). Everything lies in the box ``[-SCENE_BOUND, SCENE_BOUND]^3``; the open space
around the centre (``||x_xy|| < CLEAR_RADIUS`` above the floor) is empty, so the inside-out
cameras of :data:`sdlib.cameras.SCENE_CAMERAS` (0.1-0.5 from the centre, at eye height
``-FLOOR_Z`` = 0.5 above the floor) see the scene from within, looking outward. Rooms have no
ceiling: above the walls is the (white) background.

Layout (world frame of :mod:`sdlib.cameras`, z up)::

    walls' inner faces   |x| = ROOM_HALF or |y| = ROOM_HALF (1.8), from the floor to WALL_TOP
    floor top            z = FLOOR_Z (-0.5), the floor slab under it
    clear space          sqrt(x^2 + y^2) < CLEAR_RADIUS (0.85): nothing but the floor

A scene's caption is its prompt alone (no view suffix: a scene has no front; threestudio's
scene setting prompts without view-dependent suffixes).

>>> [s.name for s in SCENES]
['living_room', 'kitchen', 'garden', 'bedroom', 'snowy_yard', 'street']
>>> get_scene("a kitchen with a table and a white mug").name
'kitchen'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sdlib.shapezoo.objects import (
    BLUE,
    BROWN,
    CREAM,
    DARK_GRAY,
    DARK_GREEN,
    GRAY,
    RED,
    SKY,
    TAN,
    WHITE,
    WOOD,
    ShapeObject,
    _normalise,
    get_object,
    prompt_index,
)
from sdlib.shapezoo.primitives import Part, box, rotation_euler

__all__ = [
    "Scene",
    "SCENES",
    "SCENE_PROMPTS",
    "SCENE_NAMES",
    "SCENE_BOUND",
    "ROOM_HALF",
    "FLOOR_Z",
    "WALL_TOP",
    "CLEAR_RADIUS",
    "get_scene",
    "scene_index",
    "is_scene_prompt",
    "place",
    "part_bottom",
]

SCENE_BOUND = 2.0
"""Every scene lies in the box ``[-SCENE_BOUND, SCENE_BOUND]^3``."""
ROOM_HALF = 1.8
"""Inner faces of the walls at ``|x| = ROOM_HALF`` and ``|y| = ROOM_HALF``."""
WALL_THICKNESS = 0.1
"""Thickness of the walls and of the floor slab."""
FLOOR_Z = -0.5
"""Height of the floor's top face (the cameras' eye height is 0.5 above it)."""
WALL_TOP = 1.3
"""Height of the walls' top."""
CLEAR_RADIUS = 0.85
"""No part reaches inside this horizontal radius around the centre above the floor."""

# scene colours (RGB albedo in [0, 1]) beside those of sdlib.shapezoo.objects
SAGE = (0.62, 0.76, 0.55)
TERRACOTTA = (0.80, 0.45, 0.32)
BUTTER = (0.96, 0.89, 0.55)
TILE = (0.88, 0.90, 0.86)
LAVENDER = (0.72, 0.66, 0.88)
ROSE = (0.90, 0.70, 0.72)
GRASS = (0.35, 0.62, 0.25)
SNOW = (0.90, 0.93, 0.98)
ASPHALT = (0.30, 0.30, 0.32)
BRICK = (0.66, 0.28, 0.20)
SAND = (0.86, 0.78, 0.58)
STEEL = (0.70, 0.72, 0.75)


@dataclass(frozen=True)
class Scene(ShapeObject):
    """A captioned scene: a :class:`ShapeObject` surrounding the origin (see the module)."""

    walls: tuple[tuple[float, float, float], ...] = ()
    """Albedo of the four walls' inner faces facing the centre, in the order
    ``+x, -x, +y, -y`` (the wall at ``x = +ROOM_HALF`` first); empty for open scenes."""
    floor: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Albedo of the floor (ground)."""


# ---- placement -------------------------------------------------------------------------------
def _rot(part: Part) -> list[list[float]]:
    r = part.rotation
    return [list(r[0:3]), list(r[3:6]), list(r[6:9])]


def part_bottom(part: Part) -> float:
    """Lowest world ``z`` of a part (exact: its support function along ``-z``)."""
    rz = _rot(part)[2]  # row z of R: world z of the local axes
    s0, s1, s2 = part.size
    if part.kind == "box":
        extent = abs(rz[0]) * s0 + abs(rz[1]) * s1 + abs(rz[2]) * s2
    elif part.kind == "ellipsoid":
        extent = math.sqrt((rz[0] * s0) ** 2 + (rz[1] * s1) ** 2 + (rz[2] * s2) ** 2)
    elif part.kind == "frustum":  # the lower of the two cap discs' lowest points
        tilt = math.sqrt(max(0.0, 1.0 - rz[2] ** 2))
        extent = max(abs(rz[2]) * s2 + (s0 if rz[2] >= 0 else s1) * tilt,
                     -abs(rz[2]) * s2 + (s1 if rz[2] >= 0 else s0) * tilt)
    else:  # torus (major s0, minor s1) around local z
        extent = s0 * math.sqrt(max(0.0, 1.0 - rz[2] ** 2)) + s1
    return part.position[2] - extent


def place(obj: ShapeObject | str, at: tuple[float, float], scale: float = 1.0,
          yaw: float = 0.0, on: float = FLOOR_Z) -> tuple[Part, ...]:
    """The parts of a ShapeZoo object scaled, turned and standing at ``(x, y)`` on height ``on``.

    Args:
        obj: the object (or its prompt or name).
        at: ``(x, y)`` world position of the object's (vertical) axis.
        scale: size factor (> 0).
        yaw: turn about the vertical axis in degrees (0 keeps its front facing +x).
        on: the height its lowest point rests on (default the floor).
    """
    if scale <= 0:
        raise ValueError(f"place: scale {scale} must be > 0")
    obj = get_object(obj)
    turn = rotation_euler(0.0, 0.0, yaw)
    T = [list(turn[0:3]), list(turn[3:6]), list(turn[6:9])]

    def mat(a, b):
        return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]

    parts = []
    for p in obj.parts:
        pos = [scale * v for v in p.position]
        pos = [sum(T[i][k] * pos[k] for k in range(3)) for i in range(3)]
        rot = mat(T, _rot(p))
        size = tuple(scale * s for s in p.size)
        if p.kind == "torus":
            size = (size[0], size[1], 0.0)
        parts.append(replace(p, size=size, position=tuple(pos),
                             rotation=tuple(v for row in rot for v in row)))
    lift = on - min(part_bottom(p) for p in parts)
    return tuple(replace(p, position=(p.position[0] + at[0], p.position[1] + at[1],
                                      p.position[2] + lift)) for p in parts)


# ---- shells: floors and walls ----------------------------------------------------------------
def _floor(color) -> Part:
    size = 2 * (ROOM_HALF + WALL_THICKNESS)
    return box((size, size, WALL_THICKNESS), color, (0.0, 0.0, FLOOR_Z - WALL_THICKNESS / 2))


def _walls(colors, top: float = WALL_TOP) -> tuple[Part, ...]:
    """Four walls (``+x, -x, +y, -y``) from the floor to ``top``, their inner faces at ROOM_HALF."""
    h = top - FLOOR_Z
    zc = FLOOR_Z + h / 2
    c = ROOM_HALF + WALL_THICKNESS / 2
    long = 2 * (ROOM_HALF + WALL_THICKNESS)
    inner = 2 * ROOM_HALF
    return (box((WALL_THICKNESS, inner, h), colors[0], (c, 0.0, zc)),
            box((WALL_THICKNESS, inner, h), colors[1], (-c, 0.0, zc)),
            box((long, WALL_THICKNESS, h), colors[2], (0.0, c, zc)),
            box((long, WALL_THICKNESS, h), colors[3], (0.0, -c, zc)))


def _on_floor(extent, color, at: tuple[float, float], z0: float = FLOOR_Z,
              rotation=None) -> Part:
    """A box of full ``extent`` standing on height ``z0`` at ``(x, y)``."""
    kw = {} if rotation is None else {"rotation": rotation}
    return box(extent, color, (at[0], at[1], z0 + extent[2] / 2), **kw)


# ---- the scenes ------------------------------------------------------------------------------
def _living_room() -> Scene:
    walls = (SAGE, SAGE, CREAM, TERRACOTTA)
    sofa = (  # along the +y wall, facing -y
        _on_floor((1.3, 0.5, 0.22), RED, (0.0, 1.45)),
        _on_floor((1.3, 0.15, 0.55), RED, (0.0, 1.65)),
        _on_floor((0.15, 0.55, 0.38), RED, (-0.72, 1.5)),
        _on_floor((0.15, 0.55, 0.38), RED, (0.72, 1.5)),
    )
    parts = (_floor(WOOD),) + _walls(walls) + sofa + (
        _on_floor((1.2, 0.6, 0.01), BLUE, (0.0, 1.2)),  # rug in front of the sofa
    ) + place("lamp", (1.3, 1.35), 0.9) + place("barrel", (-1.35, -1.2), 0.7)
    return Scene("living_room", "a living room with a red sofa and a lamp", False, parts,
                 walls=walls, floor=WOOD)


def _kitchen() -> Scene:
    walls = (TILE, BUTTER, BUTTER, BUTTER)
    counter = (_on_floor((0.55, 2.4, 0.8), WHITE, (1.5, 0.0)),
               _on_floor((0.57, 2.42, 0.05), DARK_GRAY, (1.5, 0.0), FLOOR_Z + 0.8),
               _on_floor((0.5, 0.6, 1.6), STEEL, (1.5, -1.45)))  # fridge
    table = place("table", (-1.2, 0.2), 1.1, yaw=90.0)
    top = max(p.position[2] + p.size[2] for p in table if p.kind == "box")
    parts = ((_floor(DARK_GRAY),) + _walls(walls) + counter + table
             + place("mug", (-1.2, 0.3), 0.3, yaw=180.0, on=top))
    return Scene("kitchen", "a kitchen with a table and a white mug", False, parts,
                 walls=walls, floor=DARK_GRAY)


def _hedges(color, height: float) -> tuple[Part, ...]:
    return _walls((color,) * 4, top=FLOOR_Z + height)


def _garden() -> Scene:
    parts = ((_floor(GRASS),) + _hedges(DARK_GREEN, 0.45)
             + place("house", (-1.45, 0.1), 1.3)
             + place("pine_tree", (1.0, 1.05), 1.3) + place("pine_tree", (1.25, -0.8), 1.1)
             + place("pine_tree", (-0.2, -1.35), 1.2)
             + (_on_floor((0.5, 0.5, 0.01), SAND, (1.2, 0.0)),))
    return Scene("garden", "a garden with trees and a house", False, parts,
                 walls=(DARK_GREEN,) * 4, floor=GRASS)


def _bedroom() -> Scene:
    walls = (LAVENDER, LAVENDER, ROSE, LAVENDER)
    bed = (_on_floor((0.9, 1.9, 0.3), WOOD, (1.32, 0.45)),
           _on_floor((0.9, 1.5, 0.12), BLUE, (1.32, 0.25), FLOOR_Z + 0.3),
           _on_floor((0.7, 0.35, 0.1), WHITE, (1.32, 1.15), FLOOR_Z + 0.3),
           _on_floor((0.9, 0.1, 0.75), WOOD, (1.32, 1.45)))
    parts = ((_floor(TAN),) + _walls(walls) + bed
             + place("teddy_bear", (-1.1, 1.0), 0.65, yaw=-45.0)
             + place("chair", (-1.2, -1.0), 0.9, yaw=45.0))
    return Scene("bedroom", "a bedroom with a blue bed and a teddy bear", False, parts,
                 walls=walls, floor=TAN)


def _snowy_yard() -> Scene:
    parts = ((_floor(SNOW),) + _hedges(BROWN, 0.35)
             + place("snowman", (1.3, 0.2), 1.1, yaw=180.0)
             + place("pine_tree", (-1.0, 1.1), 1.3) + place("pine_tree", (-1.3, -0.6), 1.2)
             + place("pine_tree", (0.4, -1.3), 1.1))
    return Scene("snowy_yard", "a snowy yard with a snowman and pine trees", False, parts,
                 walls=(BROWN,) * 4, floor=SNOW)


def _street() -> Scene:
    buildings = (_on_floor((3.8, 0.4, 1.6), BRICK, (0.0, 1.7)),
                 _on_floor((3.8, 0.4, 1.2), SAND, (0.0, -1.7)),
                 _on_floor((0.4, 3.0, 0.25), GRAY, (1.7, 0.0)),
                 _on_floor((0.4, 3.0, 0.25), GRAY, (-1.7, 0.0)))
    windows = tuple(_on_floor((0.3, 0.02, 0.3), SKY, (x, 1.49), FLOOR_Z + 0.7)
                    for x in (-1.2, -0.4, 0.4, 1.2))
    parts = ((_floor(ASPHALT),) + buildings + windows
             + place("car", (0.2, -1.25), 1.3)
             + place("traffic_cone", (-1.0, 0.9), 0.45) + place("traffic_cone", (0.0, 1.0), 0.45)
             + place("traffic_cone", (1.0, 0.9), 0.45)
             + (_on_floor((0.8, 0.08, 0.01), WHITE, (-1.3, 0.0)),
                _on_floor((0.8, 0.08, 0.01), WHITE, (1.3, 0.0))))
    return Scene("street", "a street with a red car and traffic cones", False, parts,
                 walls=(), floor=ASPHALT)


SCENES: tuple[Scene, ...] = (_living_room(), _kitchen(), _garden(), _bedroom(), _snowy_yard(),
                             _street())
"""All ShapeZoo scenes, in a fixed order (a scene's index is its :func:`scene_index`)."""
SCENE_PROMPTS: tuple[str, ...] = tuple(s.prompt for s in SCENES)
"""The prompts of :data:`SCENES`, in order."""
SCENE_NAMES: tuple[str, ...] = tuple(s.name for s in SCENES)
"""The names of :data:`SCENES`, in order."""

def scene_index(prompt_or_name: str) -> int:
    """Index in :data:`SCENES` of a prompt or name (case and spacing ignored).

    Raises:
        UnknownPromptError: listing every accepted scene prompt.
    """
    return prompt_index(SCENES, prompt_or_name, kind="scene ")


def get_scene(prompt_or_name: str | Scene) -> Scene:
    """The scene of a prompt or name (see :func:`scene_index`); scenes pass through."""
    if isinstance(prompt_or_name, Scene):
        return prompt_or_name
    return SCENES[scene_index(prompt_or_name)]


def is_scene_prompt(prompt: str) -> bool:
    """Whether ``prompt`` is (the prompt or name of) a ShapeZoo scene."""
    return _normalise(prompt) in {_normalise(t) for s in SCENES for t in (s.prompt, s.name)}
