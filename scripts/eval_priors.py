"""Evaluates the ShapeZoo priors (issues 4 and 13 acceptance numbers) and writes a sample grid.

    python scripts/eval_priors.py --out outputs/eval [--device cuda] [--sd shapezoo] ...

Objects and scenes are scored apart (a class name that is a ShapeZoo scene prompt is a scene):

* ShapeZoo-SD samples (``--steps`` DDIM steps, guidance ``--guidance``) named by the classifier:
  objects ``--per_view`` samples per prompt per view suffix (accuracy overall and per suffix),
  scenes ``4 * --per_view`` samples of the prompt alone (scenes are captioned without suffix);
* VAE reconstruction PSNR on held-out renders (seed ``--seed``, not the training seed);
* ShapeZoo-DPT: Pearson with true inverse depth inside the mask, on clean held-out renders and on
  images decoded from ``x_t`` (latent noise) at several noise levels;
* the classifier's accuracy on held-out true renders.

Writes ``metrics.json`` and ``samples_grid.png`` (rows: prompts; columns: view suffixes × samples,
for scenes simply samples) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/eval")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sd", default="shapezoo")
    ap.add_argument("--dpt", default="shapezoo")
    ap.add_argument("--classifier", default="shapezoo")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--per_view", type=int, default=4)
    ap.add_argument("--n_views", type=int, default=2048, help="held-out renders")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args(argv)

    from sdlib.cameras import VIEW_SUFFIXES, view_prompt
    from sdlib.priors import DepthPrior, DiffusionPrior, load_classifier
    from sdlib.priors._train import render_views
    from sdlib.priors.train_depth import noised_images, pearson_in_mask
    from sdlib.shapezoo import OBJECTS, is_scene_prompt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = args.device
    t0 = time.time()
    prior = DiffusionPrior(model=args.sd, device=dev, dtype=args.dtype)
    depth = DepthPrior(model=args.dpt, device=dev)
    clf = load_classifier(args.classifier, device=dev)
    names = list(clf.config.class_names)
    metrics: dict = {
        "args": vars(args),
        "device_name": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu",
    }

    # ---------------------------------------------------------------- samples → classifier
    prompts, targets, views = [], [], []
    for i, p in enumerate(names):
        for v, s in enumerate(VIEW_SUFFIXES):
            for _ in range(args.per_view):
                scene = is_scene_prompt(p)  # scenes: the prompt alone, view index -1
                prompts.append(p if scene else view_prompt(p, s))
                targets.append(i)
                views.append(-1 if scene else v)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    ts = time.time()
    samples = torch.cat(
        [
            prior.sample(
                prompts[i : i + 512],
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                generator=gen,
            )
            for i in range(0, len(prompts), 512)
        ]
    )
    t_sample = time.time() - ts
    with torch.no_grad():
        pred = torch.cat(
            [clf.predict(samples[i : i + 512]) for i in range(0, len(samples), 512)]
        ).cpu()
    targets_t, views_t = torch.tensor(targets), torch.tensor(views)
    correct = (pred == targets_t).float()
    metrics["sample_accuracy"] = correct.mean().item()
    is_scene_sample = views_t < 0
    metrics["sample_accuracy_objects"] = correct[~is_scene_sample].mean().item()
    metrics["sample_accuracy_scenes"] = (
        correct[is_scene_sample].mean().item() if is_scene_sample.any() else math.nan
    )
    metrics["sample_accuracy_per_view"] = {
        s: correct[views_t == v].mean().item() for v, s in enumerate(VIEW_SUFFIXES)
    }
    per_prompt = {p: correct[targets_t == i].mean().item() for i, p in enumerate(names)}
    metrics["sample_accuracy_per_prompt"] = per_prompt
    metrics["n_samples"] = len(prompts)
    metrics["sampling_s"] = round(t_sample, 1)

    # grid: rows prompts, columns view suffix × sample
    k = args.per_view
    grid = samples.reshape(len(names), 4 * k, 3, prior.image_size, prior.image_size).cpu()
    rows = [torch.cat(list(r), dim=-1) for r in grid]
    img = torch.cat(rows, dim=-2).permute(1, 2, 0).clamp(0, 1).mul(255).byte().numpy()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = img.shape[:2]
    fig = plt.figure(figsize=(w / 60 + 3.5, h / 60))
    ax = fig.add_axes([0.28, 0, 0.72, 1])
    ax.imshow(img)
    ax.set_xticks([(v * k + k / 2) * prior.image_size for v in range(4)], VIEW_SUFFIXES, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks(
        [(i + 0.5) * prior.image_size for i in range(len(names))],
        [f"{p}{' (scene)' if is_scene_prompt(p) else ''} ({per_prompt[p]:.0%})" for p in names],
        fontsize=6,
    )
    fig.savefig(out / "samples_grid.png", dpi=100)
    plt.close(fig)

    # ---------------------------------------------------------------- held-out renders
    data = render_views(args.n_views, args.seed, dev, 64, progress=False)
    is_scene = data.object_index >= len(OBJECTS)
    groups = {"objects": ~is_scene, "scenes": is_scene}
    with torch.no_grad():
        rec = torch.cat(
            [
                prior.decode_latents(prior.encode_images(data.images[i : i + 256])).float()
                for i in range(0, len(data), 256)
            ]
        )
        mse = (rec - data.images).pow(2).flatten(1).mean(1)
        psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-12))
        metrics["vae_psnr_db"] = psnr.mean().item()
        metrics["vae_psnr_db_of_mean_mse"] = 10 * math.log10(1.0 / mse.mean().item())
        pred = torch.cat([clf.predict(data.images[i : i + 512]) for i in range(0, len(data), 512)])
        right = (pred == data.object_index).float()
        metrics["classifier_accuracy_renders"] = right.mean().item()
        for g, sel in groups.items():
            metrics[f"vae_psnr_db_{g}"] = psnr[sel].mean().item()
            metrics[f"classifier_accuracy_renders_{g}"] = right[sel].mean().item()
        inv = data.inverse_depth()[:, 0]
        res: dict[str, dict[str, float]] = {"all": {}, **{g: {} for g in groups}}
        for tf in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
            rs = []
            for i in range(0, len(data), 256):
                x = data.images[i : i + 256]
                if tf > 0:
                    t = torch.full((x.shape[0],), int(tf * 1000), device=dev, dtype=torch.long)
                    x = noised_images(
                        x, t, "latent", vae=prior.vae, abar=prior.alphas_cumprod, generator=gen
                    )
                rs.append(pearson_in_mask(depth(x), inv[i : i + 256], data.mask[i : i + 256]))
            r = torch.cat(rs)
            res["all"][f"t={tf:.1f}"] = r.nanmean().item()
            for g, sel in groups.items():
                res[g][f"t={tf:.1f}"] = r[sel].nanmean().item()
        metrics["dpt_pearson_vs_t"] = res["all"]
        metrics["dpt_pearson_clean"] = res["all"]["t=0.0"]
        for g in groups:
            metrics[f"dpt_pearson_vs_t_{g}"] = res[g]
            metrics[f"dpt_pearson_clean_{g}"] = res[g]["t=0.0"]
        metrics["n_held_out"] = {g: int(sel.sum()) for g, sel in groups.items()}
    metrics["total_s"] = round(time.time() - t0, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(
        json.dumps(
            {k: v for k, v in metrics.items() if k != "sample_accuracy_per_prompt"}, indent=1
        )
    )
    print("acceptance (issue 13): samples named >= 0.95 for objects and scenes; DPT Pearson >= 0.95"
          " on objects, >= 0.9 on scenes")
    for g in ("objects", "scenes"):
        print(f"  {g:8s} samples named {metrics[f'sample_accuracy_{g}']:.3f}   DPT Pearson (clean) "
              f"{metrics[f'dpt_pearson_clean_{g}']:.3f}   classifier on renders "
              f"{metrics[f'classifier_accuracy_renders_{g}']:.3f}   VAE PSNR "
              f"{metrics[f'vae_psnr_db_{g}']:.1f} dB")
    return metrics


if __name__ == "__main__":
    main()
