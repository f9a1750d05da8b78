"""Scene sweep (issue 13, acceptance 3): each method on every ShapeZoo scene, several seeds.

    python scripts/scene_sweep.py --out $OUT --methods sds ssd --seeds 0 1 --steps 2000 \
        --gpus 8 --jobs_per_gpu 3 --time_limit_s 540

Every run is ``scene_config(scene prompt, method, seed=...)`` (``sdlib.scene_preset``) trained
for ``--steps`` steps and scored by ``Trainer.evaluate`` at the 8 inside-out evaluation views
(depth Pearson, PSNR, CIE76 colour error, classifier accuracy; ``sdlib.shapezoo.scene_metrics``).
Runs are spread over ``--gpus`` GPUs, ``--jobs_per_gpu`` processes each (the ShapeZoo models are
small: several runs share a GPU well); each worker takes the next unclaimed run. A run still going
at ``--time_limit_s`` is scored where it is (``steps_done`` says so, ``partial`` marks it) and
checkpointed, so the command ends in time and the next call with the same ``--work`` resumes it
(finished runs keep their ``result.json`` and are skipped; ``--no-resume`` starts afresh). On the
lent GPU machine ``--work`` survives between calls while the machine stays warm:
``bash scripts/gpu_scenes.sh SECONDS [arguments]`` wraps the sweep for that.

``--variant NAME:key=value,...`` (repeatable) runs the grid again with TrainConfig overrides
(dotted keys, checked before any worker starts), e.g. to ask why a scene fails:
``--variant preset: --variant clear15:nerf.blob_radius=1.5``. A variant's runs are tagged
``..._NAME``, shown as ``SDS + NAME`` in the table, and not probed; ``config.json`` in each run's
folder holds the exact config.

Writes to ``--out``: ``scene_table.json`` (every run, and the per-scene, per-method means
over seeds), ``scene_table.md`` (depth Pearson and classifier accuracy of the untrained field
beside the final ones: the initial shell, or a floor, scores alone, ``notes/scenes_cpu``; the
depth spread, std of the result's depth over the truth's: a shell at one distance has a Pearson
of either sign and a spread near 0), ``panoramas.png`` (the first seed;
``panoramas_s<seed>.png`` for each other: for each scene, the truth and each run, a run cut by
the limit titled with its step; 12 views from inside, in colour and in depth: turbo over
[0, 4], near blue, empty white), ``runs.tar`` (per-run eval
logs) and ``sweep.log``. With ``--probe K,T,N`` (default 6,4,8) each scene's finished SDS run of the
first seed is also probed at its trained θ: SDS, SSD with the depth baseline and SSD with the
normal baseline (μ ≡ 1) on one paired design, the law-of-total-variance parts and the paired
ratios to SDS (``sdlib.gradient_variance.decomposed_variance``; in the run's record and the
table). SDS acceptance (issue 13): at least 4 of the 6 scenes reach classifier accuracy
>= 0.75 and depth Pearson >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path


def _variants(args) -> list[tuple[str, dict[str, str]]]:
    """``--variant NAME:key=value,key=value`` → ``[(NAME, {key: value})]``; the preset alone
    (``("preset", {})``) without any. Keys are dotted TrainConfig fields
    (:func:`sdlib.sweep.apply_overrides` parses and checks them)."""
    from sdlib.sweep import overrides_dict

    out = []
    for text in args.variant or ["preset:"]:
        name, sep, body = text.partition(":")
        if not sep or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise SystemExit(f"--variant {text!r}: expected NAME:key=value[,key=value...] "
                             "with NAME of letters, digits, '_' or '-'")
        try:
            out.append((name, overrides_dict([kv for kv in body.split(",") if kv])))
        except ValueError as err:
            raise SystemExit(f"--variant {text!r}: {err}") from None
    if len({n for n, _ in out}) != len(out):
        raise SystemExit(f"--variant: names repeat in {args.variant}")
    return out


def _check_variants(args) -> None:
    """Every ``--variant``'s overrides applied to a scene config: unknown keys and bad values
    stop the sweep with the key and the accepted fields named."""
    from sdlib.scene_preset import scene_config
    from sdlib.sweep import apply_overrides

    cfg = scene_config("a kitchen with a table and a white mug", "sds", device="cpu")
    for name, overrides in _variants(args):
        try:
            apply_overrides(cfg, overrides)
        except ValueError as err:
            raise SystemExit(f"--variant {name}: {err}") from None


def _tasks(args) -> list[dict]:
    from sdlib.shapezoo import SCENES

    names = [s.name for s in SCENES] if args.scenes == ["all"] else args.scenes
    return [{"scene": n, "method": m, "seed": s, "variant": v} for v, _ in _variants(args)
            for n in names for m in args.methods for s in args.seeds]


def _tag(task: dict) -> str:
    """The run's folder name; the preset's runs keep the names they had before variants."""
    suffix = "" if task.get("variant", "preset") == "preset" else f"_{task['variant']}"
    return f"{task['scene']}_{task['method']}_s{task['seed']}{suffix}"


def _label(r: dict) -> str:
    """A run's column in the tables: the method, with its variant unless it is the preset."""
    v = r.get("variant", "preset")
    return r["method"] if v == "preset" else f"{r['method']}+{v}"


def _worker(args) -> None:
    import numpy as np
    import torch

    from sdlib.scene_preset import scene_config
    from sdlib.shapezoo import get_scene
    from sdlib.shapezoo.scene_metrics import scene_eval_cameras
    from sdlib.sweep import apply_overrides
    from sdlib.train import Trainer

    variants = dict(_variants(args))
    out = Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    deadline = args.t0 + args.time_limit_s
    for task in _tasks(args):
        tag = _tag(task)
        if (out / tag / "result.json").exists() or not _claim(out / f"claim_{tag}"):
            continue  # finished in an earlier call, or taken by another worker in this one
        scene = get_scene(task["scene"])
        cfg = scene_config(scene.prompt, task["method"], baseline=args.baseline, steps=args.steps,
                           seed=task["seed"], device=args.device, eval_every=args.eval_every,
                           checkpoint_every=args.checkpoint_every, turntable_frames=0,
                           prior=args.prior, depth=args.depth)
        cfg = apply_overrides(cfg, variants[task["variant"]])
        if args.smoke:  # a CPU check of the plumbing: tiny field, dense sampler, 16² renders
            from dataclasses import replace

            from sdlib.nerf.hashgrid import HashGridConfig
            from sdlib.nerf.render import RenderConfig

            cfg = replace(cfg, render_size=16, batch_size=1, eval_size=16,
                          nerf=replace(cfg.nerf, grid=HashGridConfig(n_levels=2,
                                                                     log2_table_size=10)),
                          render=RenderConfig(sampler="dense", n_samples=12))
        trainer = Trainer(cfg, out_dir=out / tag)
        (out / tag).mkdir(exist_ok=True)
        (out / tag / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        if (out / tag / "checkpoint.pt").exists():  # an earlier call's run, cut by its limit
            trainer.load_checkpoint(out / tag / "checkpoint.pt")
        start_file = out / tag / "start.json"
        if trainer.step_count == 0:  # the untrained field's scores: what the start alone gives
            start_file.write_text(json.dumps(trainer.evaluate()) + "\n")
        start = json.loads(start_file.read_text()) if start_file.exists() else {}
        t0 = time.time()
        while trainer.step_count < cfg.steps and time.time() < deadline:
            trainer.step()
            if args.eval_every and trainer.step_count % args.eval_every == 0:
                trainer.evaluate()
        scores = trainer.evaluate()
        record = {**task, "overrides": variants[task["variant"]], **scores,
                  "steps_done": trainer.step_count,
                  "start_depth_pearson": start.get("depth_pearson", math.nan),
                  "start_classifier_accuracy": start.get("classifier_accuracy", math.nan),
                  "seconds": round(time.time() - t0, 1)}
        if trainer.step_count < cfg.steps:  # cut by the limit: keep the state for the next call
            trainer.save_checkpoint()
            record["partial"] = True
        else:
            if (args.probe and task["method"] == "sds" and task["seed"] == args.seeds[0]
                    and task["variant"] == "preset"):
                record["variance"] = _probe(trainer, args.probe, task["seed"])
            (out / tag / "result.json").write_text(json.dumps(record) + "\n")
        with open(out / f"results_{args.worker}.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        # every run, partial ones too (titled with their step)
        pano = trainer.render_eval(scene_eval_cameras(12, device=args.device), 64)
        (out / f"pano_{tag}.json").write_text(json.dumps(
            {"step": trainer.step_count, "partial": bool(record.get("partial"))}))
        np.save(out / f"pano_{tag}.npy",
                (pano.rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())
        depth = torch.where(pano.mask > 0.5, pano.depth, torch.nan)
        np.save(out / f"pano_{tag}_depth.npy", depth.half().cpu().numpy())
        print(json.dumps(record), flush=True)
        del trainer
        torch.cuda.empty_cache()
        if time.time() >= deadline:
            break


def _probe(trainer, design: str, seed: int) -> dict:
    """SDS, SSD-depth and SSD-normal (μ ≡ 1) at the trained θ on one paired design ``"K,T,N"``:
    the variance parts and paired ratios to SDS (issue 13, item 5)."""
    from dataclasses import replace

    from sdlib.distill import SDS, SSD
    from sdlib.distill.ssd import SSDConfig
    from sdlib.gradient_variance import decomposed_variance

    k, t, n = (int(v) for v in design.split(","))
    cfg = trainer.config
    if trainer.priors.depth is None:
        from sdlib.priors import DepthPrior

        trainer.priors.depth = DepthPrior(model=cfg.depth, device=cfg.device,
                                          dtype=cfg.depth_precision)
    ests = {"sds": SDS(),
            "ssd_depth_mu1": SSD.build(replace(cfg, ssd=SSDConfig()), trainer.priors),
            "ssd_normal_mu1": SSD.build(replace(cfg, ssd=SSDConfig(baseline="normal")),
                                        trainer.priors)}
    t0 = time.time()
    out = decomposed_variance(trainer, ests, "sds", n_cameras=k, n_timesteps=t, n_noises=n,
                              seed=seed + 1000)
    return {"design": [k, t, n], "seconds": round(time.time() - t0, 1), **out}


def _claim(path: Path) -> bool:
    """Takes a task for this worker: True for the one process that creates ``path``."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _mean(values: list[float]) -> float:
    vals = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _depth_image(depth):
    """Depths ``[N, H, W]`` (NaN where empty) → ``uint8 [N, H, W, 3]``: turbo over
    ``[0, 2 · SCENE_BOUND]`` (near blue, far red), empty pixels white; one scale for every row."""
    import matplotlib
    import numpy as np

    from sdlib.shapezoo.scenes import SCENE_BOUND

    d = np.asarray(depth, dtype=np.float32)
    rgb = matplotlib.colormaps["turbo"](np.clip(np.nan_to_num(d) / (2 * SCENE_BOUND), 0, 1))
    rgb[np.isnan(d)] = 1.0
    return (rgb[..., :3] * 255).round().astype(np.uint8)


def _panoramas(args, work: Path, out: Path, scenes: list[str]) -> None:
    """Per seed, per scene the truth and each method's run at 12 inside-out views, in colour
    and in depth (the runs' ``pano_*.npy``; a run without one is left out): ``panoramas.png``
    for the first seed, ``panoramas_s<seed>.png`` for each other. The truth is rendered once."""
    import torch

    from sdlib.shapezoo import get_scene, render
    from sdlib.shapezoo.scene_metrics import scene_eval_cameras

    labels = [_label({"method": m, "variant": v}) for v, _ in _variants(args)
              for m in args.methods]
    cams = scene_eval_cameras(12)
    truths = {}
    for s in scenes:
        truth = render(get_scene(s), cams, 64, 64)
        true_depth = torch.where(truth.mask > 0.5, truth.depth, torch.nan).numpy()
        truths[s] = [(f"{s}: truth", (truth.rgb.clamp(0, 1) * 255).round().byte().numpy()),
                     (f"{s}: truth depth", _depth_image(true_depth))]
    for seed in args.seeds:
        path = out / ("panoramas.png" if seed == args.seeds[0] else f"panoramas_s{seed}.png")
        _panorama_figure(work, path, labels, truths, seed)


def _panorama_figure(work: Path, path: Path, labels: list[str], truths: dict, seed: int) -> None:
    """One seed's panorama figure: each scene's truth rows, then its runs' colour and depth."""
    import matplotlib.pyplot as plt
    import numpy as np

    rows = []
    for s, truth_rows in truths.items():
        rows += truth_rows
        for label in labels:
            method, _, variant = label.partition("+")
            run = {"scene": s, "method": method, "seed": seed,
                   "variant": variant or "preset"}
            f = work / f"pano_{_tag(run)}.npy"
            info = f.with_suffix(".json")
            when = ""
            if info.exists():
                meta = json.loads(info.read_text())
                when = f" (step {meta['step']}{', partial' if meta['partial'] else ''})"
            if f.exists():
                rows.append((f"{s}: {label.upper()}{when}", np.load(f)))
            f = f.with_name(f.stem + "_depth.npy")
            if f.exists():
                rows.append((f"{s}: {label.upper()} depth{when}", _depth_image(np.load(f))))
    if rows:
        fig, axes = plt.subplots(len(rows), 1, figsize=(14, 1.35 * len(rows)), squeeze=False)
        for ax, (title, imgs) in zip(axes[:, 0], rows):
            ax.imshow(np.concatenate(list(imgs), axis=1))
            ax.set_title(title, fontsize=7, loc="left")
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)


def _aggregate(args) -> None:
    import matplotlib

    matplotlib.use("Agg")

    out = Path(args.out)
    work = Path(args.work)
    # finished runs (from every call), then each unfinished run's latest partial score
    runs = [json.loads(f.read_text()) for f in sorted(work.glob("*/result.json"))]
    done = {_tag(r) for r in runs}
    latest: dict = {}
    for f in sorted(work.glob("results_*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line) if line.strip() else None
            key = r and _tag(r)
            if r and key not in done and r["steps_done"] >= latest.get(key, {}).get(
                    "steps_done", -1):
                latest[key] = r
    runs += list(latest.values())
    keys = ("depth_pearson", "depth_spread", "psnr", "color_error", "classifier_accuracy",
            "start_depth_pearson", "start_classifier_accuracy")
    table: dict = {}
    for r in runs:
        table.setdefault(r["scene"], {}).setdefault(_label(r), []).append(r)
    means = {s: {m: {k: _mean([r.get(k, math.nan) for r in rs]) for k in keys}
                 | {"seeds": len(rs), "steps_done": min(r["steps_done"] for r in rs)}
                 for m, rs in ms.items()} for s, ms in table.items()}
    def passing(label: str) -> list[str]:
        return [s for s, ms in means.items() if label in ms
                and ms[label]["classifier_accuracy"] >= 0.75
                and ms[label]["depth_pearson"] >= 0.5]

    sds_ok = passing("sds")
    by_variant = {label: passing(label) for label in sorted({_label(r) for r in runs})
                  if label.split("+")[0] == "sds"}
    summary = {"runs": runs, "means": means, "sds_scenes_passing": sds_ok,
               "sds_scenes_passing_by_variant": by_variant,
               "sds_acceptance": len(sds_ok) >= 4, "args": {k: v for k, v in vars(args).items()
                                                            if k not in ("worker", "n_workers")}}
    (out / "scene_table.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = ["| scene | method | depth Pearson (at step 0) | depth spread | PSNR | ΔE | classifier "
             "acc. (at step 0) | seeds | steps |", "|---|---|---|---|---|---|---|---|---|"]
    for s, ms in means.items():
        for m, v in ms.items():
            name = m.upper().replace("+", " + ")
            lines.append(f"| {s} | {name} | {v['depth_pearson']:.3f} "
                         f"({v['start_depth_pearson']:.2f}) | {v['depth_spread']:.2f} | "
                         f"{v['psnr']:.2f} | "
                         f"{v['color_error']:.1f} | {v['classifier_accuracy']:.2f} "
                         f"({v['start_classifier_accuracy']:.2f}) | {v['seeds']} | "
                         f"{v['steps_done']} |")
    probes = [r for r in runs if "variance" in r]
    if probes:
        lines += ["", "Variance at each scene's trained SDS θ (paired ratio to SDS ± s.e.):", "",
                  "| scene | estimator | total ratio | noise-only ratio | noise-only share |",
                  "|---|---|---|---|---|"]
        for r in probes:
            for name in ("ssd_depth_mu1", "ssd_normal_mu1"):
                v = r["variance"][name]
                lines.append(f"| {r['scene']} | {name} | {v['total_ratio'][0]:.2f} ± "
                             f"{v['total_ratio'][1]:.2f} | {v['noise_only_ratio'][0]:.2f} ± "
                             f"{v['noise_only_ratio'][1]:.2f} | "
                             f"{v['noise_only'] / v['total']:.2f} |")
    for label, ok in by_variant.items():
        if label != "sds":
            lines.append(f"\n{label.upper()}: {len(ok)} scenes pass ({', '.join(ok) or 'none'})")
    lines.append(f"\nSDS: {len(sds_ok)} scenes with accuracy >= 0.75 and depth Pearson >= 0.5 "
                 f"({', '.join(sds_ok) or 'none'}); acceptance needs 4.")
    (out / "scene_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _panoramas(args, work, out, list(table))
    with tarfile.open(out / "runs.tar", "w") as tar:
        for f in sorted(work.glob("*/eval.jsonl")) + sorted(work.glob("*/metrics.jsonl")):
            tar.add(f, arcname=str(f.relative_to(work)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "outputs/scene_sweep"))
    ap.add_argument("--work", default="/tmp/scene_sweep_work", help="per-run logs (not in --out)")
    ap.add_argument("--methods", nargs="+", default=["sds", "vsd", "ssd"])
    ap.add_argument("--scenes", nargs="+", default=["all"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--baseline", default="depth", help="SSD's baseline: depth or normal")
    ap.add_argument("--eval_every", type=int, default=500)
    ap.add_argument("--prior", default="shapezoo")
    ap.add_argument("--depth", default="shapezoo")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true", help="CPU plumbing check: tiny sizes")
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--jobs_per_gpu", type=int, default=3)
    ap.add_argument("--time_limit_s", type=float, default=540.0,
                    help="no training step starts after this (the final evaluations follow)")
    ap.add_argument("--checkpoint_every", type=int, default=500)
    ap.add_argument("--probe", default="6,4,8",
                    help="cameras,timesteps,noises of the variance probe (SDS vs SSD depth vs "
                         "SSD normal) at each scene's finished SDS run of the first seed; '' "
                         "for none")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME:key=value[,key=value...]: run the grid once more with these "
                         "TrainConfig overrides (dotted keys, e.g. 'clear15:nerf.blob_radius=1.5'"
                         "); repeatable; the preset runs only if no --variant is given or one "
                         "is named 'preset:'")
    ap.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="continue the runs in --work: skip finished ones, resume cut ones")
    ap.add_argument("--worker", type=int, default=-1, help=argparse.SUPPRESS)
    ap.add_argument("--n_workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker >= 0:
        _worker(args)
        return
    _check_variants(args)  # a bad override fails here, before any worker starts
    args.t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    if work.exists() and not args.resume:  # a fresh sweep: no results of an earlier one
        import shutil

        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for f in work.glob("claim_*"):  # claims belong to one call; finished runs keep result.json
        f.unlink()
    n = args.gpus * args.jobs_per_gpu
    procs = []
    log = open(out / "sweep.log", "w")
    base = [a for a in (argv if argv is not None else sys.argv[1:])]
    for w in range(n):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(w % args.gpus)}
        cmd = [sys.executable, __file__, *base, "--worker", str(w), "--n_workers", str(n),
               "--t0", str(args.t0)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    log.close()
    print(f"workers done in {time.time() - args.t0:.0f} s, exit codes {codes}")
    _aggregate(args)
    if any(codes):
        raise SystemExit(f"scene_sweep: {sum(c != 0 for c in codes)} of {n} workers failed; "
                         f"see {out / 'sweep.log'}")


if __name__ == "__main__":
    main()
