r"""Scene metrics: a result seen from inside against the true scene at fixed inside-out views.

The evaluation views are :func:`scene_eval_cameras`: ``n_views`` (default 8) inside-out cameras
of :data:`~sdlib.cameras.SCENE_CAMERAS` (distance 0.3 from the centre, fovy 60 degrees,
elevation 10), azimuths evenly spaced from 0, so together they look all around the scene. At
those views the result's renders (``rgb, depth, mask``) are compared with the exact renders of
the scene (:func:`~sdlib.shapezoo.render.render`), each metric **per image**, then averaged:

* ``depth_pearson``: Pearson correlation of the depths over the pixels where both masks are set
  (:func:`~sdlib.shapezoo.metrics.depth_pearson`); in a scene the true mask is everything but
  the sky, so this measures the layout (near floor, far walls, objects in front);
* ``depth_spread``: ``std(result depth) / std(true depth)`` over the same pixels
  (:func:`~sdlib.shapezoo.metrics.depth_spread`): Pearson is blind to scale, so a shell at one
  distance scores a Pearson of either sign from its small wobbles; the spread shows it (0 for a
  constant depth, 1 for the truth);
* ``psnr``: of the RGB over all pixels (:func:`~sdlib.shapezoo.metrics.psnr`);
* ``color_error``: mean CIE76 colour difference over all pixels,
  :math:`\Delta E = \|\mathrm{Lab}(x) - \mathrm{Lab}(y)\|_2` (:func:`delta_e`), with Lab from sRGB
  under D65 (:func:`rgb_to_lab`); about 2.3 is a just-noticeable difference, white against
  black is 100; ``color_error_mask`` is the same mean over the true mask only (the scene
  without its sky);
* ``mask_iou``: IoU of the (non-sky) masks;
* ``classifier_accuracy``: the fraction of the views the ShapeZoo classifier names as the
  scene's prompt (NaN when the classifier does not know the scene's prompt, e.g. priors trained
  before scenes existed).

>>> from sdlib.shapezoo import render
>>> cams = scene_eval_cameras(4)
>>> truth = render("a kitchen with a table and a white mug", cams, 16, 16)
>>> s = evaluate_scene(truth, "a kitchen with a table and a white mug", n_views=4, height=16,
...                    width=16)
>>> s["depth_pearson"], s["depth_spread"], s["color_error"]
(1.0, 1.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sdlib.cameras import SCENE_CAMERAS, Cameras, eval_cameras
from sdlib.shapezoo.metrics import depth_pearson, depth_spread, mask_iou, psnr
from sdlib.shapezoo.render import RenderResult, render
from sdlib.shapezoo.scenes import Scene, get_scene

__all__ = [
    "SCENE_EVAL_ELEVATION",
    "scene_eval_cameras",
    "rgb_to_lab",
    "delta_e",
    "classifier_accuracy",
    "evaluate_scene",
]

SCENE_EVAL_ELEVATION = 10.0
"""Elevation (degrees) of the scene evaluation views."""

_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
                (0.2126729, 0.7151522, 0.0721750),
                (0.0193339, 0.1191920, 0.9503041))
_D65 = (0.95047, 1.0, 1.08883)


def scene_eval_cameras(n_views: int = 8, elevation: float = SCENE_EVAL_ELEVATION,
                       device: torch.device | str = "cpu") -> Cameras:
    """The fixed inside-out evaluation views: ``eval_cameras(n_views, elevation, SCENE_CAMERAS)``
    (distance 0.3, fovy 60, azimuths ``360 k / n_views``)."""
    return eval_cameras(n_views, elevation, config=SCENE_CAMERAS, device=device)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """CIE L*a*b* ``[..., 3]`` of sRGB colours ``[..., 3]`` in [0, 1] (D65 white point).

    ``linear = ((c + 0.055) / 1.055)^2.4`` (``c / 12.92`` below 0.04045); ``XYZ = M linear``;
    ``L = 116 f(Y/Yn) - 16``, ``a = 500 (f(X/Xn) - f(Y/Yn))``, ``b = 200 (f(Y/Yn) - f(Z/Zn))``
    with ``f(t) = t^(1/3)`` above ``(6/29)^3``, else ``t / (3 (6/29)^2) + 4/29``.
    """
    c = rgb.clamp(0.0, 1.0).double()
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(_SRGB_TO_XYZ, dtype=torch.float64, device=rgb.device)
    xyz = lin @ m.T / torch.tensor(_D65, dtype=torch.float64, device=rgb.device)
    d = 6.0 / 29.0
    f = torch.where(xyz > d**3, xyz.clamp_min(1e-12) ** (1.0 / 3.0), xyz / (3 * d * d) + 4.0 / 29)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return torch.stack([L, a, b], dim=-1).to(rgb.dtype)


def delta_e(rgb_a: Tensor, rgb_b: Tensor) -> Tensor:
    """``[...]`` CIE76 colour difference ``||Lab(a) - Lab(b)||`` of sRGB colours ``[..., 3]``."""
    return (rgb_to_lab(rgb_a.double()) - rgb_to_lab(rgb_b.double())).norm(dim=-1).float()


def classifier_accuracy(classifier: Any, rgb: Tensor, prompt: str) -> float:
    """Fraction of images ``rgb`` ``[B, H, W, 3]`` the classifier names ``prompt``.

    NaN when ``prompt`` is not one of the classifier's ``class_names``.
    """
    names = tuple(classifier.config.class_names)
    if prompt not in names:
        return math.nan
    images = rgb.permute(0, 3, 1, 2).float()
    size = classifier.config.image_size
    if images.shape[-1] != size:
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    pred = classifier.predict(images.to(next(classifier.parameters()).device))
    return float((pred.cpu() == names.index(prompt)).float().mean())


RenderFn = Callable[[Cameras, int, int], RenderResult]


def evaluate_scene(
    result: RenderResult | RenderFn,
    scene: Scene | str,
    *,
    n_views: int = 8,
    elevation: float = SCENE_EVAL_ELEVATION,
    height: int = 64,
    width: int = 64,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    classifier: Any = None,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Scores a scene result against the true scene at :func:`scene_eval_cameras`.

    Args:
        result: a :class:`RenderResult` rendered at ``scene_eval_cameras(n_views, elevation)``
            (in that order, ``height x width``), or a function ``(cameras, height, width) ->
            RenderResult`` that renders it.
        scene: the scene, or its prompt or name.
        n_views, elevation: the evaluation views.
        height, width: image size.
        background: sky colour of the true renders (the one the result was rendered on).
        classifier: a :class:`~sdlib.priors.ShapeZooClassifier` for ``classifier_accuracy``
            (left out when None).
        device: device of the cameras and true renders.

    Returns:
        ``{"depth_pearson", "depth_spread", "psnr", "color_error", "color_error_mask",
        "mask_iou", "n_views"}``
        (+ ``"classifier_accuracy"``), see the module docstring.
    """
    scene = get_scene(scene)
    cams = scene_eval_cameras(n_views, elevation, device=device)
    if callable(result) and not isinstance(result, RenderResult):
        result = result(cams, height, width)
    if result.rgb.shape != (n_views, height, width, 3):
        raise ValueError(
            f"evaluate_scene: result rgb has shape {tuple(result.rgb.shape)}; expected "
            f"{(n_views, height, width, 3)} (renders at scene_eval_cameras({n_views}, "
            f"{elevation}))"
        )
    true = render(scene, cams, height, width, background)
    result = result.to(true.mask.device)
    de = delta_e(result.rgb, true.rgb)  # [B, H, W]
    inside = true.mask > 0.5
    scores = {
        "depth_pearson": float(depth_pearson(result.depth, true.depth, result.mask, true.mask)),
        "depth_spread": float(depth_spread(result.depth, true.depth, result.mask, true.mask)),
        "psnr": float(psnr(result.rgb, true.rgb)),
        "color_error": float(de.mean()),
        "color_error_mask": float(de[inside].mean()) if inside.any() else math.nan,
        "mask_iou": float(mask_iou(result.mask, true.mask)),
        "n_views": n_views,
    }
    if classifier is not None:
        scores["classifier_accuracy"] = classifier_accuracy(classifier, result.rgb, scene.prompt)
    return scores
