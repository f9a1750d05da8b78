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


def config(prompt: str, pullback: str, steps: int, method: str, seed: int,
           guidance: float = 7.5, render_size: int = 32):
    """`make demo`'s sizes (renders of 32², or ``render_size``) with the given pull-back and
    guidance."""
    return shapezoo_config(
        prompt, method, device="cpu", steps=steps, batch_size=2, render_size=render_size,
        seed=seed,
        eval_every=0, checkpoint_every=0, eval_size=64, turntable_frames=0, mesh_resolution=0,
        pullback=pullback, guidance_scale=guidance,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=8, log2_table_size=14, base_resolution=8,
                                             growth_factor=1.5)),
        render=RenderConfig(n_samples=32, chunk=65536, compute_normals=False),
    )


def run_dir(runs_dir: Path, row: dict, existing: bool = False) -> Path:
    """A row's run folder; with ``existing``, that of a finished row (the first rows, SDS at
    guidance 7.5 with 32² renders, seed 0, used a shorter name)."""
    size = row.get("render_size", 32)
    new = runs_dir / (f"{row['prompt'][:24].replace(' ', '_')}_{row['method']}_{row['pullback']}"
                      f"_s{row.get('guidance', 7.5):g}_seed{row['seed']}"
                      + (f"_r{size}" if size != 32 else ""))
    old = runs_dir / f"{row['prompt'][:24].replace(' ', '_')}_{row['pullback']}"
    first = (size == 32 and row.get("guidance", 7.5) == 7.5 and row["seed"] == 0
             and row["method"] == "sds")
    return old if existing and first and not new.exists() and old.exists() else new


def run(prompt: str, pullback: str, steps: int, method: str, seed: int, out: Path,
        guidance: float = 7.5, render_size: int = 32) -> dict:
    cfg = config(prompt, pullback, steps, method, seed, guidance, render_size)
    row = {"prompt": prompt, "pullback": pullback, "method": method, "seed": seed,
           "guidance": guidance, "steps": steps, "render_size": render_size}
    start = time.perf_counter()
    result = Trainer(cfg, out_dir=run_dir(out, row)).run(progress=False)
    return {**row, "seconds": time.perf_counter() - start, **result.metrics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", nargs="+", default=["a brown teddy bear"])
    ap.add_argument("--pullbacks", nargs="+", default=["latent", "decoded"],
                    choices=["latent", "decoded"])
    ap.add_argument("--method", default="sds", choices=["sds", "vsd", "ssd"])
    ap.add_argument("--guidance", type=float, nargs="+", default=[7.5])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render-size", type=int, default=32, help="training renders (32: demo)")
    ap.add_argument("--runs-dir", default="outputs/colour_3d_cpu")
    ap.add_argument("--out", default=None, help="JSON file for the rows (appended to if present)")
    ap.add_argument("--split", action="store_true",
                    help="re-evaluate the finished runs of --out from their checkpoints with "
                         "the colour error split (overlap, mean colour, uncovered) and draw "
                         "their evaluation views against the truth (--figure)")
    ap.add_argument("--figure", default=None, help="PNG of --split's renders")
    args = ap.parse_args()
    if args.split:
        return split(Path(args.out), Path(args.runs_dir), args.figure)
    rows = []
    if args.out and Path(args.out).exists():
        rows = json.loads(Path(args.out).read_text())
    for prompt in args.prompts:
        for pullback in args.pullbacks:
            for s in args.guidance:
                row = run(prompt, pullback, args.steps, args.method, args.seed,
                          Path(args.runs_dir), s, args.render_size)
                rows.append(row)
                print(f"{prompt[:40]:40s} {pullback:8s} s={s:g} IoU {row['mask_iou']:.3f} "
                      f"ΔE {row['color_delta_e']:.1f} RGB err {row['color_rgb_mae']:.3f} "
                      f"PSNR {row['psnr']:.2f} classifier {row['classifier_accuracy']:.2f} "
                      f"{row['seconds']:.0f} s", flush=True)
                if args.out:
                    Path(args.out).write_text(json.dumps(rows, indent=1))

def split(rows_path: Path, runs_dir: Path, figure: str | None) -> None:
    """Adds ``color_delta_e_overlap``, ``color_delta_e_of_mean`` and ``uncovered_fraction``
    (:func:`sdlib.shapezoo.color_error` with the render's mask) to every row whose run folder
    holds the final checkpoint, and draws 4 of the 8 evaluation views of each against the truth.
    """
    import tempfile

    import matplotlib.pyplot as plt

    from sdlib.cameras import eval_cameras
    from sdlib.shapezoo import render

    rows = json.loads(rows_path.read_text())
    shown = []
    for row in rows:
        folder = run_dir(runs_dir, row, existing=True)
        if not (folder / "checkpoint.pt").exists():
            print(f"no checkpoint in {folder}: skipped")
            continue
        cfg = config(row["prompt"], row["pullback"], row["steps"], row["method"], row["seed"],
                     row.get("guidance", 7.5), row.get("render_size", 32))
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, out_dir=tmp)
            trainer.load_checkpoint(folder / "checkpoint.pt")
            scores = trainer.evaluate()
            cams = eval_cameras(8, device="cpu")
            views = trainer.render_eval(cams, cfg.eval_size)
        if abs(scores["color_delta_e"] - row["color_delta_e"]) > 1e-3:
            raise SystemExit(f"{folder}: re-evaluated ΔE {scores['color_delta_e']:.3f} is not the "
                             f"row's {row['color_delta_e']:.3f}; the checkpoint is not the row's")
        for k in ("color_delta_e_overlap", "color_delta_e_of_mean", "uncovered_fraction"):
            row[k] = scores[k]
        print(f"{row['prompt'][:30]:30s} {row['pullback']:8s} s={row.get('guidance', 7.5):<5g} "
              f"ΔE {row['color_delta_e']:5.1f} = overlap {row['color_delta_e_overlap']:5.1f} "
              f"(of the mean colour {row['color_delta_e_of_mean']:5.1f}), uncovered "
              f"{row['uncovered_fraction']:.3f}", flush=True)
        shown.append((row, views.rgb[::2].clamp(0, 1)))
    rows_path.write_text(json.dumps(rows, indent=1))
    if figure and shown:
        prompts = list(dict.fromkeys(r["prompt"] for r, _ in shown))
        truth = {p: render(p, eval_cameras(8, device="cpu"), cfg.eval_size,
                           cfg.eval_size).rgb[::2] for p in prompts}
        lines = [(f"truth: {p[:22]}", truth[p]) for p in prompts]
        lines += [(f"{r['prompt'][2:16]} {r['pullback']} s={r.get('guidance', 7.5):g}, "
                   f"{r.get('render_size', 32)}² renders: "
                   f"ΔE {r['color_delta_e']:.0f}, mean {r['color_delta_e_of_mean']:.0f}", v)
                  for r, v in shown]
        fig, axes = plt.subplots(len(lines), 4, figsize=(6, 1.6 * len(lines)), squeeze=False)
        for i, (title, imgs) in enumerate(lines):
            for j in range(4):
                axes[i, j].imshow(imgs[j].numpy())
                axes[i, j].axis("off")
            axes[i, 0].set_title(title, fontsize=7, loc="left")
        fig.tight_layout()
        fig.savefig(figure, dpi=90)
        print(f"wrote {figure}")


if __name__ == "__main__":
    main()
