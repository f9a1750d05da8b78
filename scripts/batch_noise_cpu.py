"""Does gradient noise limit convergence? SDS with batch 1, 2, 4 and 8 views a step, on the CPU.

    python scripts/batch_noise_cpu.py --prompts "a brown teddy bear" "a red car with yellow \\
headlights" --seeds 0 1 --batches 1 2 4 8 --steps 300 --out notes/batch_noise_cpu.json

The trainer's loss is the mean over the batch's views (``sdlib.train``), so batch B divides the
variance of SDS's gradient by B at the same mean: batch 8 has a quarter of batch 2's variance,
more than any control variate in sdlib removes (the cell design's 0.33x at frozen θs). If the
number of *steps* to a quality threshold does not fall with B, gradient noise is not what limits
these runs, and no variance reduction can make them converge in fewer steps (issues 11 and 12:
neither SSD nor the cell control variate did).

`make demo`'s sizes (32² renders, the small hash grid of ``scripts/colour_3d_cpu.py``), SDS,
guidance 7.5, evaluation every ``--eval-every`` steps at the 8 evaluation views (64²). Writes one
row per run (its evaluation curve) and prints, per batch size, the steps to 95% of the batch-2
run's final mask IoU and PSNR over batch 2's own (same prompt and seed; interpolated between
evaluations; :func:`sdlib.claims.steps_to_threshold`), with the final values' differences.
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


def config(prompt: str, batch: int, seed: int, steps: int, eval_every: int,
           overrides: tuple[str, ...] = ()):
    """`make demo`'s sizes at batch ``batch`` with the ``--set`` overrides."""
    from sdlib.sweep import apply_overrides, overrides_dict

    cfg = shapezoo_config(
        prompt, "sds", device="cpu", steps=steps, batch_size=batch, render_size=32, seed=seed,
        eval_every=eval_every, checkpoint_every=0, eval_size=64, turntable_frames=0,
        mesh_resolution=0,
        nerf=FieldConfig(grid=HashGridConfig(n_levels=8, log2_table_size=14, base_resolution=8,
                                             growth_factor=1.5)),
        render=RenderConfig(n_samples=32, chunk=65536, compute_normals=False),
    )
    return apply_overrides(cfg, overrides_dict(overrides))


def run_dir(runs_dir: Path, prompt: str, batch: int, seed: int, tag: str = "") -> Path:
    return runs_dir / (f"{prompt[:24].replace(' ', '_')}_b{batch}_seed{seed}"
                       + (f"_{tag}" if tag else ""))


def run(prompt: str, batch: int, seed: int, steps: int, eval_every: int, runs_dir: Path,
        overrides: tuple[str, ...] = (), tag: str = "") -> dict:
    cfg = config(prompt, batch, seed, steps, eval_every, overrides)
    folder = run_dir(runs_dir, prompt, batch, seed, tag)
    start = time.perf_counter()
    result = Trainer(cfg, out_dir=folder).run(progress=False)
    evals = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines()
             if line.strip()]
    return {"prompt": prompt, "batch": batch, "seed": seed, "steps": steps, "tag": tag,
            "overrides": list(overrides),
            "seconds": time.perf_counter() - start, "final": result.metrics,
            "evals": [{k: e[k] for k in ("step", "mask_iou", "psnr", "depth_pearson",
                                          "color_delta_e") if k in e} for e in evals]}


def as_runs(rows: list[dict], reference: int = 2) -> list:
    """The rows as :class:`sdlib.claims.Run` s: the reference batch without a ``--tag`` as plain
    SDS, the others as the variant ``batch_size=B`` and/or their tag (so
    :func:`sdlib.claims.steps_to_threshold` pairs them with the reference)."""
    from sdlib.claims import Run

    def variant(r: dict) -> str:
        return ",".join(v for v in ("" if r["batch"] == reference else f"batch_size={r['batch']}",
                                    r.get("tag", "")) if v)

    return [Run(run_id=f"{r['prompt']}__sds__seed{r['seed']}__b{r['batch']}{r.get('tag', '')}",
                prompt=r["prompt"], method="sds", seed=r["seed"], variant=variant(r),
                done=True, steps=r["steps"], step_ms=1000 * r["seconds"] / r["steps"],
                evals=tuple(r["evals"])) for r in rows]


def summary(rows: list[dict], n_boot: int = 2000) -> dict:
    """Per batch size and metric: steps to 95% of the batch-2 run's final value (same prompt and
    seed) over batch 2's own steps (:func:`sdlib.claims.steps_to_threshold`, interpolated between
    evaluations; median over pairs with a bootstrap interval), and the final values."""
    from sdlib import claims

    runs = as_runs(rows)
    out = {}
    for metric in ("mask_iou", "psnr"):
        stt = claims.steps_to_threshold(runs, metric, 0.95, n_boot=n_boot, interpolate=True)
        final = claims.final_quality(runs, [metric], n_boot=n_boot)
        out[metric] = {label: {"steps_ratio": claims.threshold_json(d),
                               "final": final[label][metric]["mean"].as_dict(),
                               "final_diff": final[label][metric]["diff_to_sds"].as_dict()}
                       for label, d in stt.items()}
    return out


def probe_cells(rows: list[dict], runs_dir: Path, n_batches: int) -> None:
    """For every finished run with the cell control variate: its own table as training left it
    against the same design without the table, on the same draws, at the final θ (the claims
    sweep's light probe, ``scripts/claims_sweep.py``); adds ``cells_own`` to the row."""
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from claims_sweep import _own_cells

    for r in rows:
        if "cell_cv.enabled=true" not in r.get("overrides", []) or "cells_own" in r:
            continue
        ckpt = run_dir(runs_dir, r["prompt"], r["batch"], r["seed"], r["tag"]) / "checkpoint.pt"
        cfg = config(r["prompt"], r["batch"], r["seed"], r["steps"], 0, tuple(r["overrides"]))
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, out_dir=tmp)
            trainer.load_checkpoint(ckpt)
            r["cells_own"] = _own_cells(trainer, n_batches=n_batches)
        print(f"{r['prompt'][:30]:30s} seed {r['seed']} {r['tag']}: own table / without "
              f"{r['cells_own']['ratio']:.2f} (filled {r['cells_own']['filled']})", flush=True)


def _parts(label: str) -> tuple[int, str]:
    """``(batch, tag)`` of an :func:`as_runs` label ("SDS" is batch 2 without a tag)."""
    batch, tags = 2, []
    for part in label.partition(":")[2].split(","):
        if part.startswith("batch_size="):
            batch = int(part.split("=")[1])
        elif part:
            tags.append(part)
    return batch, ",".join(tags)


def figure(rows: list[dict], path: str) -> None:
    """Mask IoU and PSNR against steps per batch size (mean and 95% interval over the prompts
    and seeds, :func:`sdlib.claims.metric_curves`)."""
    import matplotlib.pyplot as plt

    from sdlib import claims

    runs = as_runs(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("mask_iou", "psnr")):
        curves = claims.metric_curves(runs, metric, n_boot=500)
        tags = sorted({_parts(lb)[1] for lb in curves} - {""})
        styles = dict(zip(tags, ("x--", "^:", "s-.", "d--")))  # one per table design
        for label in sorted(curves, key=lambda lb: _parts(lb)):
            c = curves[label]
            b, tag = _parts(label)
            colour = plt.cm.viridis({1: 0.0, 2: 0.33, 4: 0.66, 8: 0.95}.get(b, 0.5))
            ax.plot(c["x"], c["mean"], styles.get(tag, "o-"), ms=4 if tag else 2, color=colour,
                    label=f"batch {b}" + (f" + {tag}" if tag else ""))
            ax.fill_between(c["x"], c["lo"], c["hi"], color=colour, alpha=0.15, lw=0)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
    axes[0].legend(fontsize=8)
    by_label: dict[str, set] = {}
    for r in runs:
        by_label.setdefault(r.label, set()).add(r.pair)
    common = sorted(set.intersection(*by_label.values()))  # metric_curves' common pairs
    names = sorted({" ".join(pr.split()[1:3]) for pr, _ in common})
    fig.suptitle(f"SDS, batch 1-8 views a step (CPU, demo sizes; the {len(common)} pairs every "
                 f"setting ran: {', '.join(names)} × seeds {sorted({s for _, s in common})}; "
                 "mean and 95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", nargs="+", default=["a brown teddy bear"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--runs-dir", default="outputs/batch_noise_cpu")
    ap.add_argument("--out", default=None, help="JSON file for the rows (appended to if present)")
    ap.add_argument("--summary", action="store_true", help="only summarise the rows of --out")
    ap.add_argument("--figure", default=None, help="PNG of the curves")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="TrainConfig override for these runs (e.g. cell_cv.enabled=true); "
                         "give --tag to name them")
    ap.add_argument("--tag", default="", help="name of the --set runs (rows and folders)")
    ap.add_argument("--probe-cells", type=int, default=0, metavar="BATCHES",
                    help="probe the finished cell-control-variate runs of --out at their final "
                         "θ with this many batches a design (their table against none)")
    args = ap.parse_args()
    if args.set and not args.tag:
        ap.error("--set needs --tag (the runs' name beside the plain batch-2 reference)")
    rows = json.loads(Path(args.out).read_text()) if args.out and Path(args.out).exists() else []
    done = {(r["prompt"], r["batch"], r["seed"], r.get("tag", "")) for r in rows}
    if not args.summary:
        for seed in args.seeds:
            for prompt in args.prompts:
                for b in args.batches:
                    if (prompt, b, seed, args.tag) in done:
                        continue
                    row = run(prompt, b, seed, args.steps, args.eval_every, Path(args.runs_dir),
                              tuple(args.set), args.tag)
                    rows.append(row)
                    f = row["final"]
                    print(f"{prompt[:30]:30s} seed {seed} batch {b} {args.tag}: IoU "
                          f"{f['mask_iou']:.3f} "
                          f"PSNR {f['psnr']:.2f} ΔE {f['color_delta_e']:.1f} "
                          f"{row['seconds']:.0f} s", flush=True)
                    if args.out:
                        Path(args.out).write_text(json.dumps(rows, indent=1))
    if args.probe_cells:
        probe_cells(rows, Path(args.runs_dir), args.probe_cells)
        Path(args.out).write_text(json.dumps(rows, indent=1))
    table = summary(rows)
    for metric, by_label in table.items():
        for label, d in sorted(by_label.items()):
            m, f = d["steps_ratio"]["median"], d["final_diff"]
            print(f"{metric:9s} {label:22s} steps / batch 2's: {m['estimate']:.2f} "
                  f"[{m['lo']:.2f}, {m['hi']:.2f}] (pairs {m['n']}, never "
                  f"{d['steps_ratio']['censored']})   final − batch 2's: {f['estimate']:+.3f} "
                  f"[{f['lo']:+.3f}, {f['hi']:+.3f}]")
    if args.out:
        Path(args.out).with_suffix(".summary.json").write_text(json.dumps(table, indent=1))
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
