"""The cell control variate at a frozen θ, at `make demo`'s sizes (CPU is enough).

    python scripts/cell_cv_probe.py --out notes/cell_cv_cpu.json

Trains SDS for ``--steps`` steps at the demo's sizes (32² renders, 8-level grid, shipped
ShapeZoo priors) to get a θ with structure, then measures with
:func:`sdlib.gradient_variance.batch_variance` (``--batches`` batches of ``--batch_size`` UNet
evaluations each, every design from the same generator state) the θ-gradient variance per UNet
evaluation and the time per batch of: SDS, SDS with antithetic pairs and stratification, and the
cell control variate (``sdlib.cell_control_variate``) alone and with both, its table filled by
``--warmup`` batches at the frozen θ first and still learning while measured. At a frozen θ the
table does not lag, so this bounds what it can do in training from above.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sdlib.cell_control_variate import CellCVConfig
from sdlib.distill import SDS
from sdlib.gradient_variance import batch_variance
from sdlib.nerf.field import FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.train import Trainer, shapezoo_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", default="a red mushroom with white spots")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batches", type=int, default=24)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--azimuth_bins", type=int, default=8)
    ap.add_argument("--t_bins", type=int, default=6)
    ap.add_argument("--decay", type=float, default=0.3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="outputs/cell_cv_probe.json")
    args = ap.parse_args()
    cfg = shapezoo_config(
        args.prompt, "sds", device=args.device, steps=args.steps, batch_size=2, render_size=32,
        eval_every=0, checkpoint_every=0, eval_size=64, turntable_frames=0, mesh_resolution=0,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=8, log2_table_size=14, base_resolution=8,
                                             growth_factor=1.5)),
        render=RenderConfig(n_samples=32, chunk=65536, compute_normals=False),
    )
    trainer = Trainer(cfg)
    t0 = time.time()
    for i in range(args.steps):
        trainer.step()
        if (i + 1) % 100 == 0:
            print(f"SDS step {i + 1}/{args.steps} ({time.time() - t0:.0f} s)", flush=True)
    metrics = trainer.evaluate()
    cells = CellCVConfig(enabled=True, azimuth_bins=args.azimuth_bins, t_bins=args.t_bins,
                         decay=args.decay)
    both = {"antithetic": True, "stratified": True}
    designs = {"sds": (SDS(), {}), "sds_antithetic_stratified": (SDS(), both),
               "cells": (SDS(), {"cell_cv": cells}),
               "cells_antithetic_stratified": (SDS(), {**both, "cell_cv": cells})}
    warm = {"cells": args.warmup, "cells_antithetic_stratified": args.warmup}
    t0 = time.time()
    res = batch_variance(trainer, designs, n_batches=args.batches, batch_size=args.batch_size,
                         warmup=warm, sketch_dim=None, seed=1)
    ref = res["sds"]
    table = {}
    print(f"\nθ after {args.steps} SDS steps (IoU {metrics.get('mask_iou', float('nan')):.3f}); "
          f"{args.batches} batches × {args.batch_size} UNet evaluations "
          f"({time.time() - t0:.0f} s)")
    print(f"{'design':30s} {'var/eval ratio':>16s} {'ms/batch':>9s} {'ratio × time':>13s}")
    for name, r in res.items():
        ratio = r["per_evaluation"] / ref["per_evaluation"]
        rel_se = ((r["per_evaluation_se"] / r["per_evaluation"]) ** 2
                  + (ref["per_evaluation_se"] / ref["per_evaluation"]) ** 2) ** 0.5
        table[name] = {"per_evaluation": r["per_evaluation"],
                       "per_evaluation_se": r["per_evaluation_se"], "ratio": ratio,
                       "ratio_rel_se": rel_se if name != "sds" else 0.0,
                       "ms_per_batch": r["ms_per_batch"],
                       "ratio_x_time": ratio * r["ms_per_batch"] / ref["ms_per_batch"]}
        print(f"{name:30s} {ratio:8.3f} ± {ratio * table[name]['ratio_rel_se']:5.3f} "
              f"{r['ms_per_batch']:9.0f} {table[name]['ratio_x_time']:13.3f}")
    out = {"args": vars(args), "metrics_at_theta": metrics, "designs": table,
           "torch": torch.__version__, "device": args.device}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
