"""ShapeZoo: captioned procedural 3D objects, an exact renderer, datasets and metrics.

A small world where the right 3D answer for every prompt is known (DESIGN.md §3):

* :mod:`~sdlib.shapezoo.objects`: ``OBJECTS`` (one canonical object per prompt), ``get_object``;
* :mod:`~sdlib.shapezoo.scenes`: ``SCENES`` (captioned rooms and yards seen from inside),
  ``get_scene``;
* :mod:`~sdlib.shapezoo.primitives`: the parts and their exact ray intersections;
* :mod:`~sdlib.shapezoo.render`: ``render`` / ``render_objects`` (RGB, depth, normals, mask);
* :mod:`~sdlib.shapezoo.dataset`: ``sample_views`` (captioned views on the fly), ``write_dataset``;
* :mod:`~sdlib.shapezoo.metrics`: mask IoU, depth correlation, PSNR, colour error (CIE ΔE, RGB),
  Chamfer, ``evaluate``.
"""

from sdlib.shapezoo.dataset import ViewBatch, sample_views, write_dataset
from sdlib.shapezoo.metrics import (
    chamfer_distance,
    color_error,
    depth_pearson,
    depth_spread,
    evaluate,
    mask_iou,
    mesh_chamfer,
    psnr,
    sample_mesh_surface,
    sample_object_surface,
    srgb_to_lab,
)
from sdlib.shapezoo.objects import (
    MAX_RADIUS,
    NAMES,
    OBJECTS,
    PROMPTS,
    ShapeObject,
    UnknownPromptError,
    get_object,
    object_index,
    scaled,
    translated,
)
from sdlib.shapezoo.primitives import Part
from sdlib.shapezoo.render import (
    AMBIENT,
    DIFFUSE,
    LIGHT_DIRECTION,
    RenderResult,
    pack_objects,
    render,
    render_objects,
)
from sdlib.shapezoo.scenes import (
    SCENE_BOUND,
    SCENE_NAMES,
    SCENE_PROMPTS,
    SCENES,
    Scene,
    get_scene,
    is_scene_prompt,
    scene_index,
)

__all__ = [
    "AMBIENT",
    "DIFFUSE",
    "LIGHT_DIRECTION",
    "MAX_RADIUS",
    "NAMES",
    "OBJECTS",
    "PROMPTS",
    "Part",
    "RenderResult",
    "SCENES",
    "SCENE_BOUND",
    "SCENE_NAMES",
    "SCENE_PROMPTS",
    "Scene",
    "ShapeObject",
    "UnknownPromptError",
    "ViewBatch",
    "chamfer_distance",
    "depth_pearson",
    "depth_spread",
    "color_error",
    "srgb_to_lab",
    "evaluate",
    "get_object",
    "get_scene",
    "is_scene_prompt",
    "mask_iou",
    "mesh_chamfer",
    "object_index",
    "pack_objects",
    "psnr",
    "render",
    "render_objects",
    "sample_mesh_surface",
    "sample_object_surface",
    "sample_views",
    "scene_index",
    "scaled",
    "translated",
    "write_dataset",
]
