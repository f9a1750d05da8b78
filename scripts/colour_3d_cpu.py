"""Colour in text-to-3D, pull-back through the encoder against the decoded target, on the CPU.

    python scripts/colour_3d_cpu.py --prompts "a brown teddy bear" "a red car with yellow \\
headlights" --steps 300 --out notes/colour_3d_cpu.json

`make demo`'s sizes (SDS, 2 views per step at 32², a small hash grid; shipped ShapeZoo models),
once with ``pullback="latent"`` (the preset) and once with ``pullback="decoded"``
(notes/colour.md), same seed. Prints and writes the final ground-truth metrics (mask IoU, colour
ΔE inside the true mask, mean RGB error, PSNR, classifier accuracy) of each run, and the seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sdlib.nerf.field import FieldConfig
from sdlib.nerf.hashgrid import HashGridConfig
from sdlib.nerf.render import RenderConfig
from sdlib.train import Trainer, shapezoo_config


def run(prompt: str, pullback: str, steps: int, method: str, seed: int, out: Path,
        guidance: float = 7.5) -> dict:
    cfg = shapezoo_config(
        prompt, method, device="cpu", steps=steps, batch_size=2, render_size=32, seed=seed,
        eval_every=0, checkpoint_every=0, eval_size=64, turntable_frames=0, mesh_resolution=0,
        pullback=pullback, guidance_scale=guidance,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=8, log2_table_size=14, base_resolution=8,
                                             growth_factor=1.5)),
        render=RenderConfig(n_samples=32, chunk=65536, compute_normals=False),
    )
    start = time.perf_counter()
    name = f"{prompt[:24].replace(' ', '_')}_{method}_{pullback}_s{guidance:g}_seed{seed}"
    result = Trainer(cfg, out_dir=out / name).run(progress=False)
    return {"prompt": prompt, "pullback": pullback, "method": method, "seed": seed,
            "guidance": guidance, "steps": steps, "seconds": time.perf_counter() - start,
            **result.metrics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", nargs="+", default=["a brown teddy bear"])
    ap.add_argument("--pullbacks", nargs="+", default=["latent", "decoded"],
                    choices=["latent", "decoded"])
    ap.add_argument("--method", default="sds", choices=["sds", "vsd", "ssd"])
    ap.add_argument("--guidance", type=float, nargs="+", default=[7.5])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs-dir", default="outputs/colour_3d_cpu")
    ap.add_argument("--out", default=None, help="JSON file for the rows (appended to if present)")
    args = ap.parse_args()
    rows = []
    if args.out and Path(args.out).exists():
        rows = json.loads(Path(args.out).read_text())
    for prompt in args.prompts:
        for pullback in args.pullbacks:
            for s in args.guidance:
                row = run(prompt, pullback, args.steps, args.method, args.seed,
                          Path(args.runs_dir), s)
                rows.append(row)
                print(f"{prompt[:40]:40s} {pullback:8s} s={s:g} IoU {row['mask_iou']:.3f} "
                      f"ΔE {row['color_delta_e']:.1f} RGB err {row['color_rgb_mae']:.3f} "
                      f"PSNR {row['psnr']:.2f} classifier {row['classifier_accuracy']:.2f} "
                      f"{row['seconds']:.0f} s", flush=True)
                if args.out:
                    Path(args.out).write_text(json.dumps(rows, indent=1))

if __name__ == "__main__":
    main()
