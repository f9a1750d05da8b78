"""Can the scene cameras see depth at all? Photometric reconstruction of ShapeZoo scenes.

SDS on the scene preset learns each scene's colour layout but barely its depth (depth spread
0.05-0.37 of the truth's, `notes/scenes_h200/README.md`). Before blaming the prior: from the
preset's inside-out cameras, is depth determined by the images? A camera rotating about one point
sees no parallax, and any depth explains its images; SCENE_CAMERAS move 0.1-0.5 from the centre
while the walls stand 1.3-2.3 away. This script fits the scene NeRF (the preset's field:
inverted blob, box of half-size 2) to the *true* renders from cameras of each distance range by
photometric MSE (:func:`sdlib.nerf.fit_views`; no prior, no SDS) and scores it like a scene run
(:func:`sdlib.shapezoo.scene_metrics.evaluate_scene`: depth Pearson and spread at the 8
evaluation views, PSNR). If reconstruction from the preset's cameras recovers depth, the
cameras are not what stops SDS.

    python scripts/scene_identifiability.py --scenes living_room garden --out outputs/ident
    # CPU: ~1-2 min per (scene, camera range) at the defaults

``--texture K`` paints a 3-D checker (K cells per world unit, a function of the true hit point,
so every view agrees) on the scene before fitting: if the field then recovers depth, what the
plain scenes lack is texture, not viewpoints.

Writes ``<out>/identifiability.json`` (one record per fit, as it goes) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from sdlib.cameras import SCENE_CAMERAS, get_rays, sample_cameras
from sdlib.nerf import FieldConfig, FitConfig, RenderConfig, fit_views
from sdlib.scene_preset import SCENE_FIELD
from sdlib.shapezoo import SCENES, RenderResult, render
from sdlib.shapezoo.scene_metrics import evaluate_scene, scene_eval_cameras
from sdlib.train import render_result

RANGES = {"centre": (0.01, 0.02), "preset": SCENE_CAMERAS.distance, "wide": (0.1, 0.95)}
"""Camera distance ranges from the scene centre: next to none, the preset's, nearly the room."""


def small_grid(field: FieldConfig) -> FieldConfig:
    """``field`` with a 10-level, 2^15-entry hash grid (``--small-grid``: faster on a CPU)."""
    return replace(field, grid=replace(field.grid, n_levels=10, log2_table_size=15))


def checker(truth: RenderResult, cams, cells_per_unit: float) -> torch.Tensor:
    """``truth.rgb`` with a 3-D checker painted on every hit: ``albedo · (0.6 or 1.0)`` by the
    parity of ``floor(cells_per_unit · x)`` summed over the hit point's world coordinates
    ``x = o + depth · d`` (``depth`` is along the unit ray). The sky is left as it is."""
    origins, directions = get_rays(cams, truth.rgb.shape[1], truth.rgb.shape[2])
    x = origins + truth.depth[..., None] * directions  # [B, H, W, 3] world hit points
    parity = torch.floor(cells_per_unit * x).sum(-1).remainder(2)  # [B, H, W], 0 or 1
    shade = torch.where(parity > 0.5, 0.6, 1.0) * truth.mask + (1.0 - truth.mask)
    return truth.rgb * shade[..., None]


def main() -> None:
    names = [s.name for s in SCENES]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", nargs="+", default=["living_room", "garden"], choices=names)
    p.add_argument("--ranges", nargs="+", default=list(RANGES), choices=list(RANGES))
    p.add_argument("--views", type=int, default=48, help="training views")
    p.add_argument("--size", type=int, default=32, help="training and evaluation image size")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--rays", type=int, default=2048, help="rays per step")
    p.add_argument("--samples", type=int, default=96, help="samples per ray (dense sampler)")
    p.add_argument("--small-grid", action="store_true",
                   help="a 10-level, 2^15 hash grid (faster on a CPU) instead of the preset's")
    p.add_argument("--blob-density", type=float, default=None,
                   help="the field's blob_density (preset -10: an opaque shell beyond r = 1; "
                        "0: no blob)")
    p.add_argument("--blob-radius", type=float, default=None,
                   help="the field's blob_radius (preset 1.0)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--texture", type=float, default=0.0,
                   help="paint a 3-D checker of this many cells per world unit on every surface "
                        "(the true hit point's world position, so all views agree) before "
                        "fitting; 0: the scenes as they are. Depth scores stay exact; PSNR and "
                        "ΔE are then against the untextured truth")
    p.add_argument("--control-object", default="",
                   help="also fit this ShapeZoo object from outside (SHAPEZOO_CAMERAS, the default "
                        "object field) and score its depth at eval_cameras(8): the positive "
                        "control, where silhouettes and parallax pin the depth down")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/scene_identifiability")
    a = p.parse_args()
    for flag, value, low in (("--views", a.views, 2), ("--size", a.size, 8),
                             ("--steps", a.steps, 1), ("--rays", a.rays, 64),
                             ("--samples", a.samples, 8)):
        if value < low:
            p.error(f"{flag}={value}; accepted: an integer >= {low}")
    if a.texture < 0:
        p.error(f"--texture={a.texture}; accepted: >= 0 checker cells per world unit (0: none)")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    field = SCENE_FIELD
    if a.blob_density is not None:
        field = replace(field, blob_density=a.blob_density)
    if a.blob_radius is not None:
        if a.blob_radius <= 0:
            p.error(f"--blob-radius={a.blob_radius}; accepted: > 0")
        field = replace(field, blob_radius=a.blob_radius)
    if a.small_grid:
        field = small_grid(field)
    render_cfg = RenderConfig(n_samples=a.samples, compute_normals=False)
    cfg = FitConfig(steps=a.steps, rays_per_step=a.rays, eval_every=a.steps, seed=a.seed,
                    field=field, render=render_cfg)
    records = []
    eval_cams = scene_eval_cameras(8, device=a.device)
    for name in a.scenes:
        truth_eval = render(name, eval_cams, a.size, a.size)
        for rng in a.ranges:
            cams = sample_cameras(replace(SCENE_CAMERAS, distance=RANGES[rng]), a.views,
                                  generator=torch.Generator().manual_seed(a.seed),
                                  device=a.device)
            truth = render(name, cams, a.size, a.size)
            images, eval_images = truth.rgb, truth_eval.rgb
            if a.texture > 0:
                images = checker(truth, cams, a.texture)
                eval_images = checker(truth_eval, eval_cams, a.texture)
            t0 = time.perf_counter()
            res = fit_views(images, cams, eval_images, eval_cams, cfg)
            fit_s = time.perf_counter() - t0

            s = evaluate_scene(render_result(res.field, eval_cams, a.size, render_cfg), name,
                               height=a.size, width=a.size, device=a.device)
            rec = {"scene": name, "range": rng, "distance": list(RANGES[rng]),
                   "fit_last_eval": res.history[-1].__dict__ if res.history else None,
                   "fit_seconds": round(fit_s, 1), **s, "views": a.views, "size": a.size,
                   "steps": a.steps, "rays": a.rays, "samples": a.samples,
                   "small_grid": a.small_grid, "texture": a.texture,
                   "blob_density": field.blob_density,
                   "blob_radius": field.blob_radius, "seed": a.seed, "device": a.device}
            records.append(rec)
            (out / "identifiability.json").write_text(json.dumps(records, indent=1, default=str))
            print(f"{name:12s} {rng:7s} depth Pearson {s['depth_pearson']:+.3f} spread "
                  f"{s['depth_spread']:.2f} PSNR {s['psnr']:.2f} ΔE {s['color_error']:.1f} "
                  f"({fit_s:.0f} s)", flush=True)
    if a.control_object:
        records.append(_object_control(a, cfg))
        (out / "identifiability.json").write_text(json.dumps(records, indent=1, default=str))
    print(f"\nfield: blob_density {field.blob_density}, blob_radius {field.blob_radius}; "
          f"texture {a.texture or 'none'}")
    print("| scene | cameras (distance) | depth Pearson | depth spread | PSNR | ΔE |")
    print("|---|---|---|---|---|---|")
    for r in records:
        print(f"| {r['scene']} | {r['range']} {tuple(r['distance'])} | {r['depth_pearson']:+.3f} "
              f"| {r['depth_spread']:.2f} | {r['psnr']:.2f} | {r['color_error']:.1f} |")


def _object_control(a: argparse.Namespace, cfg: FitConfig) -> dict:
    """The same fit for an object seen from outside; its depth scored like a scene's."""
    from sdlib.cameras import SHAPEZOO_CAMERAS, eval_cameras
    from sdlib.shapezoo.metrics import depth_pearson, depth_spread

    cams = sample_cameras(SHAPEZOO_CAMERAS, a.views,
                          generator=torch.Generator().manual_seed(a.seed), device=a.device)
    truth = render(a.control_object, cams, a.size, a.size)
    ev = eval_cameras(8, device=a.device)
    truth_ev = render(a.control_object, ev, a.size, a.size)
    cfg = replace(cfg, field=small_grid(FieldConfig()) if a.small_grid else FieldConfig())
    t0 = time.perf_counter()
    res = fit_views(truth.rgb, cams, truth_ev.rgb, ev, cfg, masks=truth.mask)
    fit_s = time.perf_counter() - t0
    o = render_result(res.field, ev, a.size, cfg.render)
    rec = {"scene": f"control: {a.control_object}", "range": "outside",
           "distance": list(SHAPEZOO_CAMERAS.distance),
           "depth_pearson": float(depth_pearson(o.depth, truth_ev.depth, o.mask, truth_ev.mask)),
           "depth_spread": float(depth_spread(o.depth, truth_ev.depth, o.mask, truth_ev.mask)),
           "psnr": res.history[-1].test_psnr, "color_error": float("nan"),
           "fit_seconds": round(fit_s, 1), "views": a.views, "size": a.size, "steps": a.steps}
    print(f"control {a.control_object}: depth Pearson {rec['depth_pearson']:+.3f} spread "
          f"{rec['depth_spread']:.2f} PSNR {rec['psnr']:.2f} ({fit_s:.0f} s)", flush=True)
    return rec


if __name__ == "__main__":
    main()
