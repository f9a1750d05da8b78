"""Pilot of text-to-3D on a GPU with the shipped ShapeZoo priors: SDS, VSD and SSD per prompt.

Writes ``<out>/pilot.json`` (per-run metrics, step times, variance at a shared θ) as it goes,
and ``<out>/pilot_renders.png`` (evaluation views of every run next to the truth).

    python scripts/pilot_text_to_3d.py --out outputs/pilot --steps 1500 \\
        --prompts "a snowman with a carrot nose and a black hat" "a red mushroom with white spots"
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from sdlib.cameras import eval_cameras
from sdlib.gradient_variance import compare_at_shared_theta
from sdlib.shapezoo import render
from sdlib.train import Trainer, shapezoo_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="outputs/pilot")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--methods", default="sds,ssd,vsd")
    ap.add_argument("--prompts", nargs="+",
                    default=["a snowman with a carrot nose and a black hat"])
    ap.add_argument("--budget_s", type=float, default=420.0, help="stop starting runs after this")
    ap.add_argument("--variance_samples", type=int, default=32)
    ap.add_argument("--runs_dir", default="/tmp/pilot_runs", help="each run's metrics folder")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    results: list[dict] = []
    renders: dict[tuple[str, str], torch.Tensor] = {}
    priors: dict[str, object] = {}
    cams = eval_cameras(8, device="cuda")
    for prompt in args.prompts:
        for method in args.methods.split(","):
            if time.time() - start > args.budget_s:
                results.append({"prompt": prompt, "method": method, "skipped": "time budget"})
                continue
            cfg = shapezoo_config(prompt, method, steps=args.steps, device="cuda",  # type: ignore[arg-type]
                                  eval_every=500, checkpoint_every=0, turntable_frames=0,
                                  mesh_resolution=0)
            t0 = time.time()
            trainer = Trainer(cfg, out_dir=Path(args.runs_dir) / f"{method}_{len(results)}",
                              prior=priors.get("prior"), depth=priors.get("depth"))
            priors["prior"] = trainer.prior
            if trainer.depth_prior is not None:
                priors["depth"] = trainer.depth_prior
            step_ms = []
            for _ in range(cfg.steps):
                rec = trainer.step()
                step_ms.append(rec["step_ms"])
            metrics = trainer.evaluate()
            renders[(prompt, method)] = trainer.render_eval(cams, 64).rgb.cpu()
            row = {"prompt": prompt, "method": method, "steps": cfg.steps,
                   "wall_s": time.time() - t0,
                   "step_ms_median": statistics.median(step_ms[10:]) if len(step_ms) > 10 else None,
                   **metrics}
            if method == args.methods.split(",")[0]:
                # every method at this run's final θ (a pure estimator comparison)
                state = {k: v.clone() for k, v in trainer.field.state_dict().items()}
                others = {}
                for m in args.methods.split(","):
                    c = shapezoo_config(prompt, m, device="cuda")  # type: ignore[arg-type]
                    others[m] = Trainer(c, prior=trainer.prior, depth=priors.get("depth"))
                    if others[m].depth_prior is not None:
                        priors["depth"] = others[m].depth_prior
                rep = compare_at_shared_theta(others, state, args.variance_samples)
                row["variance_at_shared_theta"] = {m: r.to_dict(with_mean=False)
                                                   for m, r in rep.items()}
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "variance_at_shared_theta"}),
                  flush=True)
            (out / "pilot.json").write_text(json.dumps(results, indent=2))
    (out / "pilot.json").write_text(json.dumps(results, indent=2))
    keys = list(renders)
    if keys:
        n_rows = len(keys) + len(args.prompts)
        fig, axes = plt.subplots(n_rows, 8, figsize=(12, 1.6 * n_rows), squeeze=False)
        row_i = 0
        for prompt in args.prompts:
            truth = render(prompt, cams, 64, 64).rgb.cpu()
            for j in range(8):
                axes[row_i, j].imshow(truth[j].clamp(0, 1).numpy())
                axes[row_i, j].axis("off")
            axes[row_i, 0].set_title(f"truth: {prompt[:40]}", fontsize=7, loc="left")
            row_i += 1
            for (p, m) in keys:
                if p != prompt:
                    continue
                for j in range(8):
                    axes[row_i, j].imshow(renders[(p, m)][j].clamp(0, 1).numpy())
                    axes[row_i, j].axis("off")
                axes[row_i, 0].set_title(m, fontsize=7, loc="left")
                row_i += 1
        fig.savefig(out / "pilot_renders.png", dpi=100, bbox_inches="tight")
    print("\n== summary")
    for r in results:
        print(f"{r['method']:4s} {r['prompt'][:40]:40s} iou={r.get('mask_iou', float('nan')):.3f} "
              f"cls={r.get('classifier_accuracy', float('nan')):.2f} "
              f"ms/step={r.get('step_ms_median') or float('nan'):.1f} "
              f"wall={r.get('wall_s', 0):.0f}s")


if __name__ == "__main__":
    main()
