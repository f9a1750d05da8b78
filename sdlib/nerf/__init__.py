"""Instant-NGP-style NeRF: hash-grid encoding, radiance field, volume rendering, export, fitting.

Modules: :mod:`~sdlib.nerf.hashgrid` (encoding; torch / Triton / tcnn backends),
:mod:`~sdlib.nerf.field` (density blob, colour, normals, background),
:mod:`~sdlib.nerf.render` (dense and nerfacc occupancy-grid rendering),
:mod:`~sdlib.nerf.export` (marching-cubes mesh, turntable video),
:mod:`~sdlib.nerf.fit` (reconstruction from posed images).
Importing this package imports neither nerfacc, triton nor tinycudann.
"""

from sdlib.nerf.export import (
    density_grid,
    extract_mesh,
    ffmpeg_available,
    mesh_from_density,
    render_panels,
    save_mesh,
    turntable,
)
from sdlib.nerf.field import Background, BackgroundConfig, FieldConfig, RadianceField, trunc_exp
from sdlib.nerf.fit import FitConfig, FitRecord, FitResult, fit_views, psnr
from sdlib.nerf.hashgrid import (
    HashGrid,
    HashGridConfig,
    encode_loop_float64,
    encode_reference,
    encode_triton,
    level_layout,
    tcnn_available,
    triton_available,
)
from sdlib.nerf.per_view import ViewParameters
from sdlib.nerf.render import (
    RayOutput,
    RenderConfig,
    RenderOutput,
    expected_depth,
    make_estimator,
    ray_box_intersect,
    render_cameras,
    render_rays,
    update_occupancy,
)

__all__ = [
    "Background",
    "BackgroundConfig",
    "FieldConfig",
    "FitConfig",
    "FitRecord",
    "FitResult",
    "HashGrid",
    "HashGridConfig",
    "RadianceField",
    "RayOutput",
    "RenderConfig",
    "RenderOutput",
    "ViewParameters",
    "expected_depth",
    "density_grid",
    "encode_loop_float64",
    "encode_reference",
    "encode_triton",
    "extract_mesh",
    "ffmpeg_available",
    "fit_views",
    "level_layout",
    "make_estimator",
    "mesh_from_density",
    "psnr",
    "ray_box_intersect",
    "render_cameras",
    "render_panels",
    "render_rays",
    "save_mesh",
    "tcnn_available",
    "triton_available",
    "trunc_exp",
    "turntable",
    "update_occupancy",
]
