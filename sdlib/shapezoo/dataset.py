"""Captioned ShapeZoo views, generated on the fly (on the GPU if asked) or written to disk.

Each view is an object seen by a camera drawn from a :class:`~sdlib.cameras.CameraConfig`
(default :data:`~sdlib.cameras.SHAPEZOO_CAMERAS`), captioned ``"<prompt>, <view suffix>"``
(:func:`~sdlib.cameras.view_prompt`), with its exact depth, normals and mask. Scenes
(:data:`~sdlib.shapezoo.scenes.SCENES`, seen from inside by ``SCENE_CAMERAS``, whose config has
``inside=True``) are captioned with their prompt alone: a scene has no front. Tensors are
**channels-first** here (``[B, C, H, W]``, what a training loop wants); :func:`render` results
are channels-last.

>>> batch = sample_views(8, generator=torch.Generator().manual_seed(0), height=32, width=32)
>>> batch.images.shape, batch.depth.shape, len(batch.captions)
(torch.Size([8, 3, 32, 32]), torch.Size([8, 1, 32, 32]), 8)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sdlib.cameras import (
    SHAPEZOO_CAMERAS,
    VIEW_SUFFIXES,
    CameraConfig,
    Cameras,
    sample_cameras,
    view_prompt,
)
from sdlib.shapezoo.objects import OBJECTS, ShapeObject, get_object
from sdlib.shapezoo.render import render_objects

__all__ = ["ViewBatch", "caption", "sample_views", "write_dataset"]


@dataclass(frozen=True)
class ViewBatch:
    """A batch of captioned views, channels-first."""

    images: Tensor
    """``[B, 3, H, W]`` shaded RGB in [0, 1] over the background."""
    depth: Tensor
    """``[B, 1, H, W]`` distance along the unit ray, 0 on the background."""
    normals: Tensor
    """``[B, 3, H, W]`` unit world normals, 0 on the background."""
    mask: Tensor
    """``[B, 1, H, W]`` 1.0 on the object."""
    object_index: Tensor
    """``[B]`` long: index of each view's object in the ``objects`` it was drawn from."""
    view_index: Tensor
    """``[B]`` long: index of each view's suffix in :data:`~sdlib.cameras.VIEW_SUFFIXES`."""
    captions: list[str]
    """``"<prompt>, <view suffix>"`` per view (the prompt alone for inside-out cameras)."""
    cameras: Cameras
    """The ``B`` cameras."""


def caption(prompt: str, suffix: str, camera_config: CameraConfig) -> str:
    """A view's caption: ``"<prompt>, <suffix>"``, or the prompt alone for inside-out cameras."""
    return prompt if camera_config.inside else view_prompt(prompt, suffix)


def _resolve(objects: Sequence[ShapeObject | str] | None) -> tuple[ShapeObject, ...]:
    if objects is None:
        return OBJECTS
    resolved = tuple(get_object(o) for o in objects)
    if not resolved:
        raise ValueError("sample_views: objects is empty; pass None for all ShapeZoo objects")
    return resolved


def sample_views(
    batch_size: int,
    *,
    objects: Sequence[ShapeObject | str] | None = None,
    camera_config: CameraConfig = SHAPEZOO_CAMERAS,
    height: int = 64,
    width: int = 64,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    background: Sequence[float] = (1.0, 1.0, 1.0),
) -> ViewBatch:
    """Draws ``batch_size`` views: objects uniformly from ``objects``, cameras from the config.

    Args:
        batch_size: number of views ``B`` >= 1.
        objects: objects (or their prompts or names) to draw from; ``None``: all of
            :data:`~sdlib.shapezoo.OBJECTS` (then ``object_index`` indexes ``OBJECTS``).
        camera_config: camera ranges and view-suffix thresholds.
        height, width: image size.
        generator: a CPU generator for reproducible draws (objects, then cameras).
        device: where the images are rendered and returned.
        background: RGB background in [0, 1].

    Returns:
        :class:`ViewBatch`.
    """
    if batch_size < 1:
        raise ValueError(f"sample_views: batch_size={batch_size} must be >= 1")
    objs = _resolve(objects)
    index = torch.randint(len(objs), (batch_size,), generator=generator)
    cameras = sample_cameras(camera_config, batch_size, generator=generator, device=device)
    index = index.to(cameras.device)
    out = render_objects(objs, index, cameras, height, width, background)
    view_index = cameras.view_indices().to(cameras.device)
    captions = [caption(objs[i].prompt, VIEW_SUFFIXES[v], camera_config)
                for i, v in zip(index.tolist(), view_index.tolist())]
    return ViewBatch(
        images=out.rgb.permute(0, 3, 1, 2),
        depth=out.depth[:, None],
        normals=out.normals.permute(0, 3, 1, 2),
        mask=out.mask[:, None],
        object_index=index,
        view_index=view_index,
        captions=captions,
        cameras=cameras,
    )


def write_dataset(
    folder: str | Path,
    n_per_object: int,
    *,
    objects: Sequence[ShapeObject | str] | None = None,
    camera_config: CameraConfig = SHAPEZOO_CAMERAS,
    height: int = 64,
    width: int = 64,
    seed: int = 0,
    device: torch.device | str = "cpu",
    background: Sequence[float] = (1.0, 1.0, 1.0),
) -> Path:
    """Writes ``n_per_object`` random views of every object to ``folder``.

    Layout: ``images/<name>_<k>.png`` (8-bit RGB); ``arrays.npz`` with ``depth [M,H,W]``,
    ``normals [M,H,W,3]``, ``mask [M,H,W]`` (uint8), ``c2w [M,4,4]``, ``fovy``, ``elevation``,
    ``azimuth``, ``distance`` ``[M]`` and ``object_index [M]``, row ``m`` matching the ``m``-th
    entry of ``index.json`` / line of ``index.csv`` (``file, name, prompt, caption, view,
    elevation, azimuth, distance, fovy``).

    Returns:
        The folder.
    """
    from PIL import Image

    if n_per_object < 1:
        raise ValueError(f"write_dataset: n_per_object={n_per_object} must be >= 1")
    objs = _resolve(objects)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    rows, arrays = [], {k: [] for k in ("depth", "normals", "mask", "c2w", "fovy", "elevation",
                                        "azimuth", "distance", "object_index")}
    for i, obj in enumerate(objs):
        cams = sample_cameras(camera_config, n_per_object, generator=g, device=device)
        out = render_objects([obj], torch.zeros(n_per_object, dtype=torch.long), cams,
                             height, width, background).to("cpu")
        suffixes = cams.view_suffixes()
        cams = cams.to("cpu")
        for k in range(n_per_object):
            name = f"images/{obj.name}_{k:04d}.png"
            rgb = (out.rgb[k].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            Image.fromarray(rgb).save(folder / name)
            rows.append({"file": name, "name": obj.name, "prompt": obj.prompt,
                         "caption": caption(obj.prompt, suffixes[k], camera_config),
                         "view": suffixes[k],
                         "elevation": float(cams.elevation[k]), "azimuth": float(cams.azimuth[k]),
                         "distance": float(cams.distance[k]), "fovy": float(cams.fovy[k])})
        arrays["depth"].append(out.depth.numpy())
        arrays["normals"].append(out.normals.numpy())
        arrays["mask"].append(out.mask.numpy().astype(np.uint8))
        for key in ("c2w", "fovy", "elevation", "azimuth", "distance"):
            arrays[key].append(getattr(cams, key).numpy())
        arrays["object_index"].append(np.full(n_per_object, i, dtype=np.int64))
    np.savez_compressed(folder / "arrays.npz", **{k: np.concatenate(v) for k, v in arrays.items()})
    (folder / "index.json").write_text(json.dumps(rows, indent=1))
    with open(folder / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder
