"""The scene preset: ProlificDreamer's scene setting (threestudio ``prolificdreamer-scene.yaml``)
adapted to ShapeZoo scenes (:mod:`sdlib.shapezoo.scenes`).

=========================  ==================================  ===================================
setting                    threestudio scene config            :func:`scene_config`
=========================  ==================================  ===================================
volume                     box of radius 5                     ``SCENE_BOUND`` = 2 (walls at 1.8)
initial density            inverted blob: bias                 the same formula,
                           ``-10 (1 - r / 2.5)``: empty        ``-10 (1 - r / 1)``: empty inside
                           inside r = 2.5, dense beyond        r = 1 (the clear space around the
                                                               cameras), dense towards the walls
cameras                    distance 0.1-2.3, fovy 40-70,       ``SCENE_CAMERAS``: distance 0.1-0.5,
                           elevation -10-45, looking at the    fovy 60, elevation -5-30, the
                           centre                              ranges of the prior's scene renders
prompts                    no view-dependent prompting         no view suffixes
timesteps                  t in [0.02, 0.98], no annealing     the same
guidance                   7.5 (VSD)                           7.5 (the ShapeZoo preset's)
background                 environment-map MLP                 solid white: the sky of the prior's
                                                               training renders
hash grid                  16 levels, 2^19, max res 4096       13 levels, 2^17 (ShapeZoo's per-unit
                                                               resolution over a 2x wider box)
=========================  ==================================  ===================================

SSD takes the depth baseline (default) or the normal baseline (``baseline="normal"``); SDS and
VSD ignore ``baseline``. Training and evaluation go through :class:`sdlib.train.Trainer`, which
evaluates scene prompts at the inside-out views of :mod:`sdlib.shapezoo.scene_metrics`.

>>> cfg = scene_config("a garden with trees and a house", "ssd", device="cpu")
>>> cfg.cameras.inside, cfg.view_dependent_prompts, cfg.nerf.blob_density < 0
(True, False, True)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from sdlib.cameras import SCENE_CAMERAS
from sdlib.control_variates import CoefficientConfig
from sdlib.distill.common import TimestepConfig
from sdlib.distill.ssd import SSDConfig
from sdlib.distill.vsd import VSDConfig
from sdlib.nerf.field import BackgroundConfig, FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.shapezoo.scenes import SCENE_BOUND
from sdlib.train import Method, TrainConfig

__all__ = ["SCENE_FIELD", "scene_config"]

SCENE_FIELD = FieldConfig(
    bound=SCENE_BOUND,
    grid=HashGridConfig(n_levels=13, log2_table_size=17, base_resolution=16, growth_factor=1.447),
    blob_density=-10.0,
    blob_radius=SCENE_BOUND / 2,
    background=BackgroundConfig(kind="solid", color=(1.0, 1.0, 1.0)),
)
"""The scene NeRF: box ``[-2, 2]^3``, inverted blob (empty within radius 1, denser outward)."""


def scene_config(prompt: str, method: Method = "ssd",
                 baseline: Literal["depth", "normal"] = "depth", **overrides: Any) -> TrainConfig:
    """The scene preset (module table): shipped priors, inside-out cameras, inverted blob, 64².

    Args:
        prompt: the scene prompt (a ShapeZoo scene's for ground-truth metrics).
        method: ``"sds"``, ``"vsd"`` or ``"ssd"``.
        baseline: SSD's baseline, ``"depth"`` or ``"normal"`` (the paper's two).
        **overrides: any :class:`~sdlib.train.TrainConfig` field.
    """
    if baseline not in ("depth", "normal"):
        raise ValueError(f"scene_config: baseline={baseline!r}; accepted 'depth', 'normal'")
    base = TrainConfig(
        prompt=prompt, method=method, steps=3000, batch_size=4, render_size=64,
        guidance_scale=7.5, view_dependent_prompts=False, cameras=SCENE_CAMERAS,
        nerf=SCENE_FIELD, timesteps=TimestepConfig(t_min=0.02, t_max=0.98),
        prior="shapezoo", depth="shapezoo",
        ssd=SSDConfig(baseline=baseline,
                      coefficient=CoefficientConfig(reduce="channel", lr=1e-2)),
        vsd=VSDConfig(lora_rank=8, lr=1e-3),
        mesh_resolution=0,
    )
    return replace(base, **overrides)
