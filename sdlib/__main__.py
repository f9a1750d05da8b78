"""The ``sdlib`` command line (also ``python -m sdlib``).

    sdlib generate "a red mushroom with white spots" --method ssd      # text-to-3D
    sdlib generate "a hamburger" --preset paper --prior stabilityai/stable-diffusion-2-1-base \\
        --depth Intel/dpt-hybrid-midas                               # real SD and MiDaS
    sdlib generate "a red ball" --method sds --set cell_cv.enabled=true --set antithetic=true \
        --set stratified=true                                        # any TrainConfig field
    sdlib variance "a red ball" --methods sds,vsd,ssd --checkpoint outputs/x/checkpoint.pt
    sdlib sweep outputs/sweep1 --prompts "a red ball" "a blue cube" --seeds 0 1 2 \
        --methods sds ssd --steps 2000 --eval-every 250 --vary guidance_scale=7.5 \
        --vary guidance_scale=100 --set ssd.baseline=constant     # one process, or under
    torchrun --standalone --nproc_per_node 8 -m sdlib sweep outputs/sweep1 ...  # 8 processes
    sdlib figures list | regenerate <fig_id>

``generate`` defaults to the shipped ShapeZoo models and CUDA when present; it writes the
config, ``metrics.jsonl``, a checkpoint (a second call resumes it), a turntable video and a
mesh into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _train_config(args: argparse.Namespace):
    from sdlib.train import paper_config, shapezoo_config

    preset = {"shapezoo": shapezoo_config, "paper": paper_config}[args.preset]
    overrides = {}
    for name in ("steps", "batch_size", "render_size", "guidance_scale", "seed", "device",
                 "prior", "depth", "eval_every", "checkpoint_every", "compile"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    config = preset(args.prompt, args.method, **overrides)
    if getattr(args, "set", None):  # dotted TrainConfig keys, parsed and checked by sdlib.sweep
        from sdlib.sweep import apply_overrides, overrides_dict

        config = apply_overrides(config, overrides_dict(args.set))
    return config


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", help="text prompt (ShapeZoo prompts get ground-truth metrics)")
    p.add_argument("--preset", choices=["shapezoo", "paper"], default="shapezoo",
                   help="shapezoo: shipped small models, 64²; paper: SD 2.1-base + MiDaS settings")
    p.add_argument("--prior", help="diffusers Stable Diffusion repo id or folder ('shapezoo')")
    p.add_argument("--depth", help="transformers depth model repo id or folder ('shapezoo')")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="views per step")
    p.add_argument("--render-size", dest="render_size", type=int, help="render resolution")
    p.add_argument("--guidance-scale", dest="guidance_scale", type=float,
                   help="classifier-free guidance s (diffusers' convention)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the priors (CUDA; default: on for --preset paper on CUDA)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any TrainConfig field, dotted into nested configs (repeatable): "
                        "--set depth_dtype=float16 --set cell_cv.enabled=true")


def _generate(args: argparse.Namespace) -> int:
    from sdlib.train import Trainer

    cfg = _train_config(args)
    out = Path(args.out or f"outputs/{cfg.method}_{'_'.join(cfg.prompt.split())[:60]}")
    trainer = Trainer(cfg, out_dir=out)
    result = trainer.run(progress=not args.quiet)
    print(json.dumps({"out_dir": str(result.out_dir), "steps": result.steps,
                      "metrics": result.metrics,
                      "turntable": str(result.turntable) if result.turntable else None,
                      "mesh": str(result.mesh) if result.mesh else None}, indent=2))
    return 0


def _variance(args: argparse.Namespace) -> int:
    from sdlib.gradient_variance import compare_at_shared_theta
    from sdlib.train import Trainer

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    trainers = {}
    prior = depth = None
    for method in methods:
        args.method = method
        cfg = _train_config(args)
        trainer = Trainer(cfg, prior=prior, depth=depth)
        prior, depth = trainer.prior, trainer.depth_prior or depth
        trainers[method] = trainer
    if args.checkpoint:
        state = args.checkpoint
    else:  # the initial θ, shared
        state = next(iter(trainers.values())).field.state_dict()
    reports = compare_at_shared_theta(trainers, state, args.n_samples)
    table = {m: {**r.to_dict(with_mean=False), "method_state": getattr(r, "method_state", None)}
             for m, r in reports.items()}
    print(json.dumps(table, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=2))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from sdlib.sweep import SweepConfig, run_sweep

    config = SweepConfig(
        prompts=tuple(args.prompts), seeds=tuple(args.seeds), methods=tuple(args.methods),
        steps=args.steps, eval_every=args.eval_every, overrides=tuple(args.set),
        vary=tuple(args.vary), preset=args.preset, variance_steps=tuple(args.variance_steps),
        variance_samples=args.variance_samples,
    )
    table = run_sweep(config, args.sweep_dir, device=args.device, timeout_hours=args.timeout_hours)
    if table is None:  # not rank 0
        return 0
    failed = [r for r in table if r["status"] != "done"]
    print(json.dumps({"sweep_dir": args.sweep_dir, "runs": len(table), "failed": len(failed),
                      "table": str(Path(args.sweep_dir) / "results.csv"),
                      "errors": {r["run_id"]: r["error"] for r in failed}}, indent=2))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="sdlib", description="score distillation for text-to-3D")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="text-to-3D with SDS, VSD or SSD")
    _add_common(gen)
    gen.add_argument("--method", default="ssd", help="sds | vsd | ssd")
    gen.add_argument("--steps", type=int)
    gen.add_argument("--eval-every", dest="eval_every", type=int)
    gen.add_argument("--checkpoint-every", dest="checkpoint_every", type=int)
    gen.add_argument("--out", help="output folder (a second call resumes from its checkpoint)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    var = sub.add_parser("variance", help="gradient variance of several methods at one θ")
    _add_common(var)
    var.add_argument("--methods", default="sds,vsd,ssd", help="comma-separated methods")
    var.add_argument("--checkpoint", help="checkpoint whose θ is shared (default: initial θ)")
    var.add_argument("--n-samples", dest="n_samples", type=int, default=32)
    var.add_argument("--out", help="write the table as JSON here")

    sw = sub.add_parser(
        "sweep", help="a grid of runs (prompts x seeds x methods x overrides), torchrun-ready",
        description="Runs a grid of text-to-3D runs into SWEEP_DIR/<run_id>, this process's "
        "share of it under torchrun (round-robin over the sorted runs, one device per "
        "LOCAL_RANK modulo the GPUs); finished runs are skipped, unfinished ones resume; rank 0 "
        "writes SWEEP_DIR/results.json and results.csv.")
    sw.add_argument("sweep_dir", help="the sweep folder (a second launch resumes it)")
    sw.add_argument("--prompts", nargs="+", required=True, help="text prompts")
    sw.add_argument("--seeds", nargs="+", type=int, default=[0])
    sw.add_argument("--methods", nargs="+", default=["sds", "vsd", "ssd"],
                    help="sds vsd ssd")
    sw.add_argument("--steps", type=int, default=3000)
    sw.add_argument("--eval-every", dest="eval_every", type=int, default=500)
    sw.add_argument("--preset", choices=["shapezoo", "paper"], default="shapezoo")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override for every run; dotted keys into TrainConfig "
                    "(e.g. --set ssd.baseline=constant --set nerf.grid.n_levels=8)")
    sw.add_argument("--vary", action="append", default=[], metavar="KEY=VALUE",
                    help="one value of a grid axis; repeat per value "
                    "(--vary guidance_scale=7.5 --vary guidance_scale=100)")
    sw.add_argument("--variance-steps", dest="variance_steps", nargs="*", type=int, default=[],
                    help="steps after which gradient_variance.measure runs (variance.jsonl)")
    sw.add_argument("--variance-samples", dest="variance_samples", type=int, default=32)
    sw.add_argument("--device", help="device of every run (default: cuda:LOCAL_RANK%%n_gpus, "
                    "else cpu)")
    sw.add_argument("--timeout-hours", dest="timeout_hours", type=float, default=72.0,
                    help="how long rank 0 waits for the slowest rank at the gather")

    fig = sub.add_parser("figures", help="list or regenerate figures (python -m sdlib.figures)")
    fig.add_argument("rest", nargs=argparse.REMAINDER)

    args = parser.parse_args(argv)
    if args.command == "figures":
        from sdlib.figures import _main as figures_main

        return figures_main(args.rest)
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "sweep":
            return _sweep(args)
        return _variance(args)
    except (ValueError, OSError, RuntimeError, FloatingPointError) as err:
        print(f"sdlib {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
