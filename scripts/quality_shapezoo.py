"""Text-to-3D quality on ShapeZoo prompts: SDS, SSD and VSD with the shipped priors (GPU).

Issue 6, acceptance 2. Every (prompt, method) pair is one full :class:`sdlib.train.Trainer` run
(checkpoints, metrics, turntable and mesh in ``<out>/runs/<object>_<method>/``). Runs go to
``--workers`` processes sharing one GPU: at ShapeZoo's size a step is bound by kernel launches on
the host, so several processes fill the GPU that one leaves idle. Step times are therefore
*not* single-run speeds (see ``scripts/bench_paper_step.py`` for timings).

Writes, as runs finish:

* ``<out>/quality.json``: one row per run (final ground-truth metrics, the evaluation history,
  wall time, median step time);
* ``<out>/runs/<object>_<method>/views.png``: the 8 evaluation views, and ``strip.png``: 12
  turntable frames (RGB) at elevation 15°, for looking at Janus faces and floaters.

Then ``--figures`` (default ``figures/``) gets ``fig31_quality.png`` + ``.json`` (the
per-prompt table) and ``fig31_quality_views.png`` (truth and each method, front and side).

The default prompts were fixed before any run: five with a distinct front (snowman, house,
teddy bear, car, penguin) and three without (mushroom, table lamp, birthday cake).

    python scripts/quality_shapezoo.py --steps 1000 --workers 8 --out outputs/quality
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

from sdlib.shapezoo.objects import BENCHMARK_PROMPTS


def _save_images(images, path: Path, ncols: int) -> None:
    """``[N, H, W, 3]`` in [0, 1] → one PNG grid of ``ncols`` columns."""
    import imageio.v2 as imageio
    import numpy as np

    arr = images.clamp(0, 1).cpu().numpy()
    n, h, w, _ = arr.shape
    rows = (n + ncols - 1) // ncols
    grid = np.ones((rows * h, ncols * w, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = arr[i]
    imageio.imwrite(path, (grid * 255).round().astype(np.uint8))


def run_one(task: tuple[str, str, int, int, str, str]) -> dict:
    """One text-to-3D run; returns its table row (runs in a worker process)."""
    import torch

    from sdlib.cameras import cameras_from_spherical, eval_cameras
    from sdlib.shapezoo import get_object
    from sdlib.train import Trainer, shapezoo_config

    prompt, method, steps, seed, out, device = task
    torch.set_num_threads(1)
    obj = get_object(prompt)
    name = obj.name
    run_dir = Path(out) / "runs" / f"{name}_{method}"
    cfg = shapezoo_config(prompt, method, steps=steps, seed=seed, device=device,  # type: ignore[arg-type]
                          eval_every=max(steps // 4, 1), checkpoint_every=max(steps // 4, 1))
    t0 = time.time()
    trainer = Trainer(cfg, out_dir=run_dir)
    result = trainer.run(progress=False)
    wall = time.time() - t0
    views = trainer.render_eval(eval_cameras(8, device=device), 64).rgb
    _save_images(views, run_dir / "views.png", ncols=8)
    az = torch.arange(12, dtype=torch.float32) * 30.0
    strip = trainer.render_eval(cameras_from_spherical(15.0, az, 1.75, 55.0, device=device),
                                 64)
    _save_images(strip.rgb, run_dir / "strip.png", ncols=12)
    step_ms = [json.loads(line)["step_ms"] for line in open(run_dir / "metrics.jsonl")]
    history = [json.loads(line) for line in open(run_dir / "eval.jsonl")]
    return {
        "prompt": prompt, "object": name, "has_front": obj.has_front,
        "method": method, "steps": result.steps, "seed": seed, "wall_s": wall,
        "step_ms_median": statistics.median(step_ms[10:]) if len(step_ms) > 10 else None,
        "history": [{k: h[k] for k in ("step", "mask_iou", "classifier_accuracy") if k in h}
                    for h in history if "mask_iou" in h],
        **{k: v for k, v in result.metrics.items() if k != "step"},
        "turntable": str(result.turntable.name) if result.turntable else None,
        "mesh": str(result.mesh.name) if result.mesh else None,
    }


def warm_up_cuda() -> None:
    """Builds nerfacc's CUDA extension once, before the workers load it."""
    import torch

    from sdlib.nerf.field import FieldConfig, RadianceField
    from sdlib.nerf.render import RenderConfig, make_estimator

    field = RadianceField(FieldConfig()).cuda()
    make_estimator(field, RenderConfig(), torch.device("cuda"))
    import nerfacc  # noqa: F401

    rays_o = torch.zeros(1, 3, device="cuda")
    rays_d = torch.tensor([[1.0, 0.0, 0.0]], device="cuda")
    aabb = torch.tensor([[-1.0, -1, -1, 1, 1, 1]], device="cuda")
    nerfacc.ray_aabb_intersect(rays_o, rays_d, aabb)


def summarise(rows: list[dict], methods: list[str]) -> dict:
    """Per-method means over prompts (IoU, classifier accuracy) and the pass/fail of issue 6."""
    out: dict = {}
    for m in methods:
        rs = [r for r in rows if r["method"] == m and "mask_iou" in r]
        if not rs:
            continue
        iou = statistics.mean(r["mask_iou"] for r in rs)
        cls = statistics.mean(r["classifier_accuracy"] for r in rs)
        out[m] = {"n_prompts": len(rs), "n_front": sum(r["has_front"] for r in rs),
                  "mean_mask_iou": iou, "classifier_accuracy": cls,
                  "min_mask_iou": min(r["mask_iou"] for r in rs),
                  "mean_depth_pearson": statistics.mean(r["depth_pearson"] for r in rs),
                  "mean_psnr": statistics.mean(r["psnr"] for r in rs),
                  "passes": bool(len(rs) >= 8 and iou >= 0.7 and cls >= 0.8)}
    return out


def make_figures(rows: list[dict], out: Path, fig_dir: Path, args: argparse.Namespace) -> None:
    import imageio.v2 as imageio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from sdlib.figures import savefig

    methods = [m for m in args.methods.split(",") if any(r["method"] == m for r in rows)]
    prompts = [p for p in args.prompts if any(r["prompt"] == p for r in rows)]
    by = {(r["prompt"], r["method"]): r for r in rows}
    summary = summarise(rows, methods)
    # 1. the table as bars
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    x = np.arange(len(prompts))
    width = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        for ax, key in zip(axes, ("mask_iou", "classifier_accuracy")):
            vals = [by.get((p, m), {}).get(key, np.nan) for p in prompts]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, vals, width, label=m.upper())
    labels = [by[(p, methods[0])]["object"] if (p, methods[0]) in by else p[:10] for p in prompts]
    for ax, title, thr in zip(axes, ("mask IoU (8 views)", "classifier accuracy (8 views)"),
                              (0.7, 0.8)):
        ax.axhline(thr, color="k", lw=0.8, ls="--")
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"ShapeZoo text-to-3D, {args.steps} steps, guidance 7.5, H100", fontsize=9)
    fig.tight_layout()
    table = [{k: r.get(k) for k in ("object", "has_front", "method", "steps", "mask_iou",
                                    "classifier_accuracy", "depth_pearson", "psnr",
                                    "step_ms_median", "wall_s")} for r in rows]
    params = {"steps": args.steps, "methods": args.methods, "prompts": list(args.prompts),
              "workers": args.workers, "seed": args.seed}
    savefig(fig, "fig31_quality", out_dir=fig_dir, notebook="31_text_to_3d.ipynb",
            parameters=params, seed=args.seed,
            data={"summary": summary, "table": table,
                  "command": "python scripts/quality_shapezoo.py " + " ".join(
                      f"--{k} {v}" for k, v in (("steps", args.steps), ("workers", args.workers),
                                                 ("methods", args.methods)))})
    plt.close(fig)
    # 2. truth and every method at the front (azimuth 0) and the side (azimuth 90)
    from sdlib.cameras import eval_cameras
    from sdlib.shapezoo import render

    cams = eval_cameras(8)
    cols = 2 * (1 + len(methods))
    fig, axes = plt.subplots(len(prompts), cols, figsize=(1.3 * cols, 1.35 * len(prompts)),
                             squeeze=False)
    for i, p in enumerate(prompts):
        truth = render(p, cams, 64, 64).rgb.clamp(0, 1).numpy()
        panels = [("truth", truth)]
        for m in methods:
            r = by.get((p, m))
            if r is None:
                continue
            grid = imageio.imread(out / "runs" / f"{r['object']}_{m}" / "views.png") / 255.0
            panels.append((f"{m.upper()} {r['mask_iou']:.2f}",
                           grid.reshape(64, 8, 64, 3).transpose(1, 0, 2, 3)))
        for j, (label, imgs) in enumerate(panels):
            for k, view in enumerate((0, 2)):  # eval views are 45° apart: 0 front, 2 side
                ax = axes[i, 2 * j + k]
                ax.imshow(imgs[view])
                ax.set_xticks([])
                ax.set_yticks([])
                if k == 0:
                    ax.set_title(label, fontsize=7, loc="left")
        axes[i, 0].set_ylabel(by[(p, methods[0])]["object"] if (p, methods[0]) in by else "",
                              fontsize=7)
    fig.tight_layout(pad=0.2)
    savefig(fig, "fig31_quality_views", out_dir=fig_dir, notebook="31_text_to_3d.ipynb",
            parameters=params, seed=args.seed, data={"views": "azimuth 0 and 90, elevation 15"})
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="outputs/quality")
    ap.add_argument("--figures", default="figures")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--methods", default="vsd,ssd,sds", help="comma-separated; VSD first: longest")
    ap.add_argument("--prompts", nargs="+", default=list(BENCHMARK_PROMPTS))
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run")
    ap.add_argument("--summarise_only", action="store_true", help="figures from quality.json")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / "quality.json"
    rows: list[dict] = json.loads(table_path.read_text()) if table_path.exists() else []
    done = {(r["prompt"], r["method"]) for r in rows}
    if not args.summarise_only:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if args.device.startswith("cuda"):
            warm_up_cuda()
        tasks = [(p, m, args.steps, args.seed, str(out), args.device)
                 for m in args.methods.split(",") for p in args.prompts if (p, m) not in done]
        start = time.time()
        with mp.get_context("spawn").Pool(args.workers) as pool:
            for row in pool.imap_unordered(run_one, tasks):
                rows.append(row)
                table_path.write_text(json.dumps(rows, indent=2))
                print(f"[{time.time() - start:6.0f}s] {row['method']:4s} {row['object']:12s} "
                      f"iou={row.get('mask_iou', float('nan')):.3f} "
                      f"cls={row.get('classifier_accuracy', float('nan')):.2f} "
                      f"ms/step={row['step_ms_median']:.0f} wall={row['wall_s']:.0f}s",
                      flush=True)
    make_figures(rows, out, Path(args.figures), args)
    print(json.dumps(summarise(rows, args.methods.split(",")), indent=1))


if __name__ == "__main__":
    main()
