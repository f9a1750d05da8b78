"""`make demo`'s text-to-3D part: one CPU-sized SDS generation with the shipped ShapeZoo models.

    python scripts/demo_generate.py --out outputs/demo/generate

Leaves in ``--out``: config.json, metrics.jsonl, eval.jsonl, final_metrics.json (mask IoU,
depth Pearson, PSNR, classifier accuracy against the true object, evaluated once at the end),
an mp4 turntable (normals from the rendered depth: the field's normals would cost 7x the
render) and a mesh (.obj, .glb).
"""

from __future__ import annotations

import argparse
import json

import torch

from sdlib.nerf.field import FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.train import Trainer, shapezoo_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompt", default="a red mushroom with white spots")
    ap.add_argument("--method", default="sds", choices=["sds", "vsd", "ssd"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="outputs/demo/generate")
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    cfg = shapezoo_config(
        args.prompt, args.method, device="cpu", steps=args.steps, batch_size=2, render_size=32,
        eval_every=0, checkpoint_every=100, eval_size=64, turntable_frames=24,
        mesh_resolution=64, mesh_threshold=5.0,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=8, log2_table_size=14, base_resolution=8,
                                             growth_factor=1.5)),
        render=RenderConfig(n_samples=32, chunk=65536, compute_normals=False),
    )
    result = Trainer(cfg, out_dir=args.out).run()
    print(json.dumps({"out_dir": str(result.out_dir), "steps": result.steps,
                      "metrics": result.metrics,
                      "turntable": str(result.turntable), "mesh": str(result.mesh)}, indent=2))


if __name__ == "__main__":
    main()
